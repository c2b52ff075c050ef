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
    frame; boxes: Nx4 XYXY tight boxes in the input frame (as the predictor transforms
    them); scale: input-frame pixels per low-res pixel; input_size: (h, w); regions: LxL
    int64 index of the finest instance covering each low-res pixel (-1: background), when
    the instances' parents are known.
    """

    image: torch.Tensor
    masks: torch.Tensor
    boxes: torch.Tensor
    scale: float
    input_size: tuple[int, int]
    regions: torch.Tensor | None = None


def scene_to_tensors(
    image: np.ndarray,
    masks: np.ndarray,
    boxes: np.ndarray,
    image_size: int,
    low_res: int,
    parent: np.ndarray | None = None,
) -> SceneTensors:
    """Resize a scene for a model with ``image_size`` input and ``low_res`` mask logits.

    Arguments:
      image: HxWx3 uint8. masks: NxHxW bool. boxes: Nx4 XYXY in original pixels.
      image_size: side of the model's square input; low_res: side of its mask logits.
      parent: N parent indices (-1 for whole objects; parents come first), for ``regions``.
    """
    height, width = image.shape[:2]
    resized = ResizeLongestSide(image_size).apply_image(image)
    in_h, in_w = preprocess_shape(height, width, image_size)
    low_h, low_w = preprocess_shape(height, width, low_res)
    m = torch.from_numpy(np.ascontiguousarray(masks)).float()[:, None]
    small = F.interpolate(m, size=(low_h, low_w), mode="area")[:, 0] >= 0.5
    padded = torch.zeros((len(masks), low_res, low_res), dtype=torch.bool)
    padded[:, :low_h, :low_w] = small
    scaled = ResizeLongestSide(image_size).apply_boxes(boxes, (height, width))
    regions = None
    if parent is not None:
        regions = torch.full((low_res, low_res), -1, dtype=torch.long)
        for index in range(len(padded)):  # parents first, so the finest instance wins
            regions[padded[index]] = index
    return SceneTensors(
        image=torch.from_numpy(np.array(resized)).permute(2, 0, 1),
        masks=padded,
        boxes=torch.from_numpy(scaled).float(),
        scale=image_size / low_res,
        input_size=(in_h, in_w),
        regions=regions,
    )
