"""Mask IoU from run-length encodings, as ``pycocotools.mask.iou`` computes it, NumPy only.

Masks (``HxW`` arrays or COCO RLEs, compressed or not) are turned into runs of set pixels
in column-major (COCO) order, :class:`MaskRuns`, without decoding RLEs. The intersection of
a mask with every ground truth is then a sum, over the mask's runs, of the ground truths'
prefix pixel counts at the run's ends, so the cost grows with the number of runs (about
the masks' widths), not with ``D x G x H x W``; temporaries are kept below ``4M`` elements
by working on blocks of ground truths and masks.

IoU is ``intersection / union`` in float64 of exact integer counts, 0 when the masks do
not intersect (also for empty masks) - the same doubles as pycocotools.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from segany.data.rle import decode_counts
from segany.errors import InputError

__all__ = [
    "MaskLike",
    "MaskRuns",
    "MaskSet",
    "encode_masks",
    "mask_iou_matrix",
    "mask_list",
    "runs_iou",
]

#: One mask: an ``HxW`` array (non-zero = set) or a COCO RLE ``{"size", "counts"}``.
MaskLike = npt.ArrayLike | Mapping[str, Any]
#: The masks of one image: an ``NxHxW`` array or a sequence of :data:`MaskLike`.
MaskSet = npt.ArrayLike | Sequence[MaskLike]

_MAX_BLOCK = 1 << 22  # elements of the largest temporary array of the IoU computation


@dataclass(frozen=True)
class MaskRuns:
    """Runs of set pixels of ``K`` masks of one size, in column-major (COCO) pixel order.

    Mask ``k`` covers ``[starts[i], ends[i])`` for ``offsets[k] <= i < offsets[k + 1]``.
    """

    size: tuple[int, int] | None  # None when there are no masks
    starts: npt.NDArray[np.int64]
    ends: npt.NDArray[np.int64]
    offsets: npt.NDArray[np.int64]  # K + 1
    areas: npt.NDArray[np.int64]  # K

    def __len__(self) -> int:
        return len(self.areas)


def mask_iou_matrix(pred_masks: MaskSet, gt_masks: MaskSet) -> npt.NDArray[np.float64]:
    """``DxG`` mask IoU (0 where masks do not intersect), as ``pycocotools.mask.iou``.

    Both sets may mix ``HxW`` arrays and COCO RLEs; all masks must have one size.
    """
    pred, truth = encode_masks(pred_masks, "predictions"), encode_masks(gt_masks, "ground truth")
    if len(pred) == 0 or len(truth) == 0:
        return np.zeros((len(pred), len(truth)), dtype=np.float64)
    if pred.size != truth.size:
        raise InputError(f"predictions are {pred.size}, ground truth {truth.size} (HxW)")
    return runs_iou(pred, truth)


def runs_iou(pred: MaskRuns, truth: MaskRuns) -> npt.NDArray[np.float64]:
    """``DxG`` IoU: intersections from prefix counts of the ground truths at run ends."""
    assert truth.size is not None
    pixels = truth.size[0] * truth.size[1]
    inter = np.zeros((len(pred), len(truth)), dtype=np.int64)
    dtype = np.int32 if pixels < 2**31 - 1 else np.int64
    per_block = max(1, _MAX_BLOCK // (pixels + 1))
    for g0 in range(0, len(truth), per_block):
        g1 = min(g0 + per_block, len(truth))
        prefix = _prefix_counts(truth, g0, g1, pixels, dtype)  # gx(P+1)
        for k0, k1 in _chunks(pred.offsets, max(1, _MAX_BLOCK // (g1 - g0))):
            r0, r1 = int(pred.offsets[k0]), int(pred.offsets[k1])
            covered = prefix[:, pred.ends[r0:r1]] - prefix[:, pred.starts[r0:r1]]  # gxR
            summed = np.zeros((g1 - g0, r1 - r0 + 1), dtype=np.int64)
            np.cumsum(covered, axis=1, out=summed[:, 1:])
            bounds = pred.offsets[k0 : k1 + 1] - r0
            inter[k0:k1, g0:g1] = (summed[:, bounds[1:]] - summed[:, bounds[:-1]]).T
    union = pred.areas[:, None] + truth.areas[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(inter > 0, inter / np.maximum(union, 1), 0.0)


def _prefix_counts(
    truth: MaskRuns, g0: int, g1: int, pixels: int, dtype: type[np.signedinteger[Any]]
) -> npt.NDArray[np.signedinteger[Any]]:
    """``(g1-g0)x(P+1)``: entry ``[g, p]`` = set pixels of mask ``g0 + g`` before pixel p."""
    r0, r1 = int(truth.offsets[g0]), int(truth.offsets[g1])
    owner = np.repeat(np.arange(g1 - g0), np.diff(truth.offsets[g0 : g1 + 1]))
    edges = np.zeros((g1 - g0, pixels + 1), dtype=dtype)
    edges[owner, truth.starts[r0:r1]] += 1  # runs are non-empty: no index repeats
    edges[owner, truth.ends[r0:r1]] -= 1
    inside = np.cumsum(edges, axis=1, dtype=dtype, out=edges)
    prefix = np.zeros_like(edges)
    np.cumsum(inside[:, :-1], axis=1, dtype=dtype, out=prefix[:, 1:])
    return prefix


def _chunks(offsets: npt.NDArray[np.int64], max_runs: int) -> Iterator[tuple[int, int]]:
    """Consecutive mask ranges ``[k0, k1)`` with at most ``max_runs`` runs (or one mask)."""
    count, k0 = len(offsets) - 1, 0
    while k0 < count:
        k1 = int(np.searchsorted(offsets, offsets[k0] + max_runs, side="right")) - 1
        k1 = min(max(k1, k0 + 1), count)
        yield k0, k1
        k0 = k1


def mask_list(masks: MaskSet, what: str) -> list[Any]:
    """The masks of one image as a list (rows of an ``NxHxW`` array, or the items)."""
    if isinstance(masks, Mapping):
        raise InputError(f"{what}: expected a list of masks, got a single RLE")
    if isinstance(masks, np.ndarray) or hasattr(masks, "__array__"):
        array = np.asarray(masks)
        if array.ndim != 3 and array.size:
            raise InputError(f"{what}: a mask array must be NxHxW; got shape {array.shape}")
        return list(array) if array.ndim == 3 else []
    return list(masks)  # type: ignore[arg-type]


def encode_masks(masks: MaskSet, what: str) -> MaskRuns:
    """Runs of the masks of one image, checking that they share one size."""
    starts: list[npt.NDArray[np.int64]] = []
    ends: list[npt.NDArray[np.int64]] = []
    size: tuple[int, int] | None = None
    for k, mask in enumerate(mask_list(masks, what)):
        mask_size, s, e = _mask_runs(mask, f"{what}, mask {k}")
        if size is not None and mask_size != size:
            raise InputError(f"{what}: mask {k} is {mask_size}, mask 0 is {size} (HxW)")
        size = mask_size
        starts.append(s)
        ends.append(e)
    counts = np.array([len(s) for s in starts], dtype=np.int64)
    begin = np.concatenate([np.zeros(1, np.int64), np.cumsum(counts)])
    start_all = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    end_all = np.concatenate(ends) if ends else np.zeros(0, np.int64)
    areas = np.array([int((e - s).sum()) for s, e in zip(starts, ends, strict=True)], np.int64)
    return MaskRuns(size, start_all, end_all, begin, areas)


def _mask_runs(
    mask: MaskLike, what: str
) -> tuple[tuple[int, int], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(H, W)`` and the non-empty runs ``[start, end)`` of one mask, column-major."""
    if isinstance(mask, Mapping):
        return _rle_runs(mask, what)
    array = np.asarray(mask)
    if array.ndim != 2:
        raise InputError(f"{what}: a mask must be HxW; got shape {array.shape}")
    size = (int(array.shape[0]), int(array.shape[1]))
    flat = array.astype(bool, copy=False).ravel(order="F")
    if flat.size == 0:
        return size, np.zeros(0, np.int64), np.zeros(0, np.int64)
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    first = np.zeros(int(flat[0]), np.int64)  # a run starting at pixel 0
    last = np.full(int(flat[-1]), flat.size, np.int64)  # a run ending at the last pixel
    bounds = np.concatenate((first, changes, last))
    return size, bounds[0::2], bounds[1::2]


def _rle_runs(
    rle: Mapping[str, Any], what: str
) -> tuple[tuple[int, int], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Runs of a COCO RLE (compressed or list counts), without decoding the mask."""
    try:
        height, width = (int(v) for v in rle["size"])
        raw = rle["counts"]
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{what}: an RLE needs 'size': [h, w] and 'counts'") from error
    values = decode_counts(raw) if isinstance(raw, str | bytes) else raw
    try:
        counts = np.asarray(values, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise InputError(f"{what}: RLE counts must be a string or a list of ints") from error
    if height < 0 or width < 0 or (counts < 0).any() or counts.sum() != height * width:
        raise InputError(
            f"{what}: RLE counts add up to {int(counts.sum())} pixels (negative counts are "
            f"not allowed), but size {height}x{width} has {height * width}"
        )
    bounds = np.concatenate([np.zeros(1, np.int64), np.cumsum(counts)])
    starts, ends = bounds[1 : len(counts) : 2], bounds[2 : len(counts) + 1 : 2]
    keep = ends > starts
    return (height, width), starts[keep], ends[keep]
