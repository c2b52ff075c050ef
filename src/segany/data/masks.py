"""Geometry of binary masks: interior points, boxes, IoU (torch, batched)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def interior_points(masks: torch.Tensor) -> torch.Tensor:
    """The most interior pixel of each mask (deepest under repeated 3x3 erosion), batched,
    as training places its centre clicks (:func:`interior_point` is the evaluation's exact
    Euclidean version).

    Arguments:
      masks: NxHxW bool, none empty.

    Returns:
      Nx2 float (x, y) pixel centres; among equally deep pixels the one nearest the mask's
      centroid (a strip's middle, not its topmost end).
    """
    current = masks.float()[:, None]
    depth = torch.zeros_like(current)
    alive = current.flatten(1).sum(1) > 0
    while bool(alive.any()):
        depth = depth + current
        current = -F.max_pool2d(-current, 3, stride=1, padding=1)
        alive = current.flatten(1).sum(1) > 0
    height, width = masks.shape[-2:]
    ys = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width).flatten()
    xs = torch.arange(width, dtype=torch.float32)[None].expand(height, width).flatten()
    weights = masks.flatten(1).float()
    count = weights.sum(1).clamp(min=1)
    cy, cx = (weights @ ys) / count, (weights @ xs) / count
    spread = (ys[None] - cy[:, None]) ** 2 + (xs[None] - cx[:, None]) ** 2
    flat = depth.flatten(1)
    deepest = flat >= flat.max(1, keepdim=True).values
    best = torch.where(deepest, spread, torch.full_like(spread, float("inf"))).argmin(1)
    return torch.stack([xs[best] + 0.5, ys[best] + 0.5], dim=1)


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


def interior_point(mask: np.ndarray) -> tuple[float, float]:
    """The centre click of one HxW bool mask: the pixel centre (x, y) farthest from its
    boundary (exact Euclidean distance; the image border counts as boundary), as the
    interactive-segmentation protocol of RITM and SAM places it; among equally deep
    pixels, the one nearest the mask's centroid.

    The tie-break matters: a curve or strip of even width is equally deep all along its
    middle, and taking the first such pixel in raster order would put the "centre" click
    at its topmost end.
    """
    import cv2  # (imported on first use)

    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        raise ValueError("interior_point of an empty mask")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = np.zeros((y1 - y0 + 2, x1 - x0 + 2), dtype=np.uint8)
    crop[1:-1, 1:-1] = mask[y0:y1, x0:x1]
    depth = cv2.distanceTransform(crop, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    deepest = np.argwhere(depth >= depth.max() - 1e-4)  # (row, col) of every tie
    centroid = np.array([ys.mean() - y0 + 1, xs.mean() - x0 + 1])
    row, col = deepest[np.argmin(((deepest - centroid) ** 2).sum(1))]
    return float(col) + 0.5 - 1 + x0, float(row) + 0.5 - 1 + y0


def corrective_click(truth: np.ndarray, mask: np.ndarray) -> tuple[tuple[float, float], int] | None:
    """The click a user makes to correct ``mask`` towards ``truth`` (HxW bool each).

    The larger error region decides: the most interior pixel of the missed pixels with
    label 1, or of the extra pixels with label 0. ``None`` when the mask is exact.
    """
    missed = truth & ~mask
    extra = mask & ~truth
    if not missed.any() and not extra.any():
        return None
    positive = missed.sum() >= extra.sum()
    return interior_point(missed if positive else extra), int(positive)


def binary_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two HxW bool masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def box_fill(box: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``shape`` (H, W) bool mask filling the XYXY (inclusive, rounded) ``box``, clipped to
    the image: the box-fill baseline, and the seed of a box's own graph cut."""
    out = np.zeros(shape, dtype=bool)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    out[max(y0, 0) : max(y1 + 1, 0), max(x0, 0) : max(x1 + 1, 0)] = True
    return out
