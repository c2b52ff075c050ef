"""Turning generated scenes into training tensors in the model's frame.

A scene (HxWx3 image, NxHxW instance masks) becomes: the resized uint8 image, the masks
at the decoder's low resolution in the padded frame (NxLxL, L = 4x the embedding size),
and the per-instance sampling weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..transforms import ResizeLongestSide, preprocess_shape


@dataclass
class SceneTensors:
    """One scene in the model frame.

    image: 3xhxw uint8 (resized, unpadded); masks: NxLxL bool low-res targets in the padded
    frame; scale: input-frame pixels per low-res pixel; input_size: (h, w).
    """

    image: torch.Tensor
    masks: torch.Tensor
    scale: float
    input_size: tuple[int, int]


def scene_to_tensors(
    image: np.ndarray, masks: np.ndarray, image_size: int, low_res: int
) -> SceneTensors:
    """Resize a scene for a model with ``image_size`` input and ``low_res`` mask logits.

    Arguments:
      image: HxWx3 uint8. masks: NxHxW bool.
      image_size: side of the model's square input; low_res: side of its mask logits.
    """
    height, width = image.shape[:2]
    resized = ResizeLongestSide(image_size).apply_image(image)
    in_h, in_w = preprocess_shape(height, width, image_size)
    low_h, low_w = preprocess_shape(height, width, low_res)
    m = torch.from_numpy(np.ascontiguousarray(masks)).float()[:, None]
    small = F.interpolate(m, size=(low_h, low_w), mode="area")[:, 0] >= 0.5
    padded = torch.zeros((len(masks), low_res, low_res), dtype=torch.bool)
    padded[:, :low_h, :low_w] = small
    return SceneTensors(
        image=torch.from_numpy(np.array(resized)).permute(2, 0, 1),
        masks=padded,
        scale=image_size / low_res,
        input_size=(in_h, in_w),
    )


def interior_points(masks: torch.Tensor) -> torch.Tensor:
    """The most interior pixel of each mask (deepest under repeated 3x3 erosion).

    Arguments:
      masks: NxHxW bool, none empty.

    Returns:
      Nx2 float (x, y) pixel centres (ties resolved to the first pixel in raster order).
    """
    current = masks.float()[:, None]
    depth = torch.zeros_like(current)
    alive = current.flatten(1).sum(1) > 0
    while bool(alive.any()):
        depth = depth + current
        current = -F.max_pool2d(-current, 3, stride=1, padding=1)
        alive = current.flatten(1).sum(1) > 0
    flat = depth.flatten(1).argmax(1)
    width = masks.shape[-1]
    return torch.stack([(flat % width).float() + 0.5, (flat // width).float() + 0.5], dim=1)


def tight_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Nx4 XYXY boxes of NxHxW bool masks, maxima inclusive (as SAM); empty gives zeros."""
    rows = masks.any(2)
    cols = masks.any(1)
    height, width = masks.shape[-2:]
    y_idx = torch.arange(height, dtype=torch.float32)
    x_idx = torch.arange(width, dtype=torch.float32)
    big = 1e9
    y0 = torch.where(rows, y_idx, big).min(1).values
    y1 = torch.where(rows, y_idx, -big).max(1).values
    x0 = torch.where(cols, x_idx, big).min(1).values
    x1 = torch.where(cols, x_idx, -big).max(1).values
    boxes = torch.stack([x0, y0, x1, y1], dim=1)
    return torch.where(masks.flatten(1).any(1)[:, None], boxes, torch.zeros_like(boxes))
