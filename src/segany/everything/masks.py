"""Mask arithmetic for the automatic mask generator: scores, boxes, NMS, crops and RLE.

Every function reproduces the numbers of its counterpart in the official
``segment_anything.utils.amg`` / ``torchvision.ops`` (the tests compare them), with torch
and NumPy only. Boxes are XYXY with *inclusive* right and bottom edges, as the official
``batched_mask_to_box`` makes them: a one-pixel mask at (x, y) has the box (x, y, x, y).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch

__all__ = [
    "box_xyxy_to_xywh",
    "counts_area",
    "counts_to_mask",
    "is_box_near_crop_edge",
    "masks_to_boxes",
    "masks_to_rle_counts",
    "nms",
    "stability_score",
    "uncrop_boxes",
    "uncrop_points",
]

Counts = npt.NDArray[np.int64]

# torchvision's batched_nms switches, on CPU, to per-category NMS followed by an unstable
# re-sort of the kept indices when it gets more than this many box coordinates.
_TORCHVISION_VANILLA_NUMEL = 4000


def stability_score(logits: torch.Tensor, threshold: float, offset: float) -> torch.Tensor:
    """IoU of the masks cut at ``threshold + offset`` and at ``threshold - offset``.

    The first mask always lies inside the second, so the IoU is a ratio of pixel counts.

    Args:
        logits: ``KxHxW`` mask logits.
        threshold: the mask threshold (0.0 for SAM).
        offset: how far the two cuts lie from ``threshold``.

    Returns:
        ``K`` float32 scores (NaN for a mask that is empty at the lower cut).
    """
    inner = _count_set(logits > threshold + offset)
    outer = _count_set(logits > threshold - offset)
    return inner.to(torch.float32) / outer.to(torch.float32)


def _count_set(masks: torch.Tensor) -> torch.Tensor:
    """``K`` set pixels of ``KxHxW`` bool masks (summed as bytes: faster than a bool sum;
    docs/benchmarks.md, 'Three masks per box, no NMS')."""
    pixels = masks.shape[-2] * masks.shape[-1]
    total = torch.int32 if pixels < 2**31 else torch.int64
    return masks.view(torch.uint8).reshape(*masks.shape[:-2], pixels).sum(-1, dtype=total)


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight boxes around masks.

    Args:
        masks: ``KxHxW`` bool.

    Returns:
        ``Kx4`` int64 XYXY boxes with inclusive right/bottom edges; ``[0, 0, 0, 0]`` for an
        empty mask.
    """
    count, height, width = masks.shape
    if count == 0 or height == 0 or width == 0:
        return torch.zeros((count, 4), dtype=torch.int64, device=masks.device)
    # a max over bytes is an any(), much faster than torch's bool any() on CPU
    rows = masks.view(torch.uint8).amax(dim=-1)  # KxH
    cols = masks.view(torch.uint8).amax(dim=-2)  # KxW
    top = rows.argmax(dim=-1)
    bottom = height - 1 - rows.flip(-1).argmax(dim=-1)
    left = cols.argmax(dim=-1)
    right = width - 1 - cols.flip(-1).argmax(dim=-1)
    boxes = torch.stack([left, top, right, bottom], dim=-1)
    empty = rows.amax(dim=-1) == 0
    return boxes.masked_fill(empty[:, None], 0)


def is_box_near_crop_edge(
    boxes: torch.Tensor,
    crop_box: Sequence[int],
    image_box: Sequence[int],
    atol: float = 20.0,
) -> torch.Tensor:
    """Which boxes touch an edge of their crop that is not also an edge of the image.

    Args:
        boxes: ``Kx4`` XYXY boxes in the crop's frame.
        crop_box: the crop, XYXY in the image.
        image_box: the whole image, ``[0, 0, W, H]``.
        atol: a box coordinate within this many pixels of an edge touches it.

    Returns:
        ``K`` bool.
    """
    crop = torch.as_tensor(crop_box, dtype=torch.float32, device=boxes.device)
    image = torch.as_tensor(image_box, dtype=torch.float32, device=boxes.device)
    placed = uncrop_boxes(boxes, crop_box).to(torch.float32)
    near_crop = torch.isclose(placed, crop[None], atol=atol, rtol=0)
    near_image = torch.isclose(placed, image[None], atol=atol, rtol=0)
    return (near_crop & ~near_image).any(dim=1)


def uncrop_boxes(boxes: torch.Tensor, crop_box: Sequence[int]) -> torch.Tensor:
    """``Kx4`` XYXY boxes in a crop's frame -> in the image's frame."""
    x0, y0 = int(crop_box[0]), int(crop_box[1])
    return boxes + torch.tensor([[x0, y0, x0, y0]], dtype=boxes.dtype, device=boxes.device)


def uncrop_points(points: npt.NDArray[np.float64], crop_box: Sequence[int]) -> np.ndarray:
    """``Kx2`` (x, y) points in a crop's frame -> in the image's frame."""
    return points + np.array([[crop_box[0], crop_box[1]]], dtype=np.int64)


def box_xyxy_to_xywh(box: Sequence[int]) -> list[int]:
    """One XYXY box -> ``[x, y, w, h]`` with ``w = x1 - x0`` (as the official records)."""
    x0, y0, x1, y1 = (int(v) for v in box)
    return [x0, y0, x1 - x0, y1 - y0]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression, ordered as ``torchvision.ops.batched_nms`` on CPU.

    Boxes are visited by decreasing score (ties in index order); a box is dropped when its
    IoU with an already kept box is ``> iou_threshold``. IoU is computed in float32 exactly
    as torchvision's CPU kernel does (areas ``(x1 - x0) * (y1 - y0)``; two boxes of zero
    area have IoU NaN and never suppress each other).

    The order of the result follows ``batched_nms`` with a single category: by decreasing
    score with ties in index order, except that for more than 1,000 boxes torchvision
    re-sorts the kept indices with torch's default (unstable) sort, which is reproduced
    here because the order decides later tie-breaks.

    Args:
        boxes: ``Nx4`` XYXY boxes (any real dtype; compared as float32).
        scores: ``N`` scores.
        iou_threshold: suppress above this IoU.

    Returns:
        int64 indices of the kept boxes.
    """
    count = int(boxes.shape[0])
    if count == 0:
        return torch.empty(0, dtype=torch.int64)
    scores = scores.detach().cpu()
    order = torch.sort(scores, descending=True, stable=True).indices
    ordered = boxes.detach().cpu().to(torch.float32)[order].numpy()
    kept = order[torch.from_numpy(_greedy(ordered, iou_threshold))]
    if boxes.numel() > _TORCHVISION_VANILLA_NUMEL:
        kept = torch.sort(kept).values
        kept = kept[scores[kept].sort(descending=True)[1]]
    return kept


def _greedy(boxes: npt.NDArray[np.float32], iou_threshold: float) -> npt.NDArray[np.int64]:
    """Positions kept by greedy NMS of ``Nx4`` float32 boxes already sorted by score."""
    x0, y0, x1, y1 = (np.ascontiguousarray(boxes[:, i]) for i in range(4))
    areas = (x1 - x0) * (y1 - y0)
    suppressed = np.zeros(len(boxes), dtype=bool)
    kept: list[int] = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in range(len(boxes)):
            if suppressed[i]:
                continue
            kept.append(i)
            rest = slice(i + 1, None)
            width = np.maximum(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0)
            height = np.maximum(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0)
            inter = width * height
            iou = inter / (areas[i] + areas[rest] - inter)
            suppressed[rest] |= iou.astype(np.float64) > iou_threshold
    return np.asarray(kept, dtype=np.int64)


def masks_to_rle_counts(
    masks: torch.Tensor, crop_box: Sequence[int], image_size: tuple[int, int]
) -> list[Counts]:
    """Uncompressed COCO RLE counts of crop masks placed into the whole image.

    Equivalent to padding each mask to the image with zeros and run-length encoding it in
    column-major order (as the official ``uncrop_masks`` + ``mask_to_rle_pytorch``), but the
    padded masks are never built: runs are found column by column in the crop and moved.

    Args:
        masks: ``Kxhxw`` bool masks of the crop ``crop_box`` (XYXY, ``w = x1 - x0``).
        crop_box: where the crop lies in the image.
        image_size: ``(H, W)`` of the image.

    Returns:
        ``K`` int64 arrays of run lengths, starting with a (maybe empty) run of 0s and
        without a trailing empty run, as the official ``mask_to_rle_pytorch`` makes them.
    """
    count, height, width = masks.shape
    image_h, image_w = image_size
    total = image_h * image_w
    x0, y0 = int(crop_box[0]), int(crop_box[1])
    padded = torch.zeros((count, width, height + 2), dtype=torch.bool, device=masks.device)
    padded[:, :, 1:-1] = masks.transpose(1, 2)
    change = padded[:, :, 1:] != padded[:, :, :-1]  # Kxwx(h+1): starts and ends of runs
    index, column, row = (t.cpu().numpy() for t in change.nonzero(as_tuple=True))
    del padded, change
    flat = (column.astype(np.int64) + x0) * image_h + (row.astype(np.int64) + y0)
    index, starts, ends = index[0::2], flat[0::2], flat[1::2]
    # A run ending at a crop column's bottom continues at the next column's top only when
    # the crop spans the image's full height: merge such touching runs.
    if len(starts):
        touching = (ends[:-1] == starts[1:]) & (index[:-1] == index[1:])
        first = np.concatenate(([True], ~touching))
        last = np.concatenate((~touching, [True]))
        index, starts, ends = index[first], starts[first], ends[last]
    bounds = np.searchsorted(index, np.arange(count + 1))
    out: list[Counts] = []
    for k in range(count):
        lo, hi = bounds[k], bounds[k + 1]
        edges = np.empty(2 * (hi - lo) + 2, dtype=np.int64)
        edges[0], edges[-1] = 0, total
        edges[1:-1:2], edges[2:-1:2] = starts[lo:hi], ends[lo:hi]
        runs = np.diff(edges)
        if len(runs) > 1 and runs[-1] == 0:
            runs = runs[:-1]
        out.append(runs)
    return out


def counts_to_mask(counts: Counts, size: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Decode uncompressed RLE counts (column-major) into an ``HxW`` bool mask."""
    height, width = size
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return np.ascontiguousarray(flat.reshape(width, height).T)


def counts_area(counts: Counts) -> int:
    """Set pixels of an RLE: the sum of its runs of 1s."""
    return int(counts[1::2].sum())
