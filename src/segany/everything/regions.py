"""Connected components (8-connectivity) and removal of small holes and islands.

A NumPy replacement for the official generator's use of
``cv2.connectedComponentsWithStats(mask, 8)`` in ``remove_small_regions``. Components get
the labels OpenCV gives them (its block-based scan numbers a component by the first 2x2
block, in raster order of blocks, that holds one of its pixels), which matters when ties in
size are broken by label.

Method: set pixels are grouped into horizontal runs; runs in consecutive rows that touch
(overlap after widening by one pixel: 8-connectivity) are found by binary search and
joined with a vectorised union-find (hook the larger root under the smaller, then
compress paths). The work is a few passes over the pixels and then over the runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch

from segany.errors import InputError

from .candidates import Candidates
from .masks import Counts, counts_to_mask, masks_to_boxes, masks_to_rle_counts, nms

__all__ = ["clean_small_regions", "connected_components", "remove_small_regions"]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass
class _Components:
    """Components of an ``HxW`` mask as runs: run r covers ``row[r], start[r]:end[r]``."""

    shape: tuple[int, int]
    row: IntArray
    start: IntArray
    end: IntArray
    label: IntArray  # component of each run, 1..count in OpenCV's order
    sizes: IntArray  # count + 1 pixel counts; sizes[0] = unset pixels

    @property
    def count(self) -> int:
        return len(self.sizes) - 1

    def paint(self, chosen: BoolArray) -> BoolArray:
        """``HxW`` bool mask of the runs whose component is chosen (``chosen[label]``)."""
        height, width = self.shape
        keep = chosen[self.label]
        edges = np.zeros((height, width + 1), dtype=np.int8)
        np.add.at(edges, (self.row[keep], self.start[keep]), 1)
        np.add.at(edges, (self.row[keep], self.end[keep]), -1)
        return np.cumsum(edges, axis=1, dtype=np.int8)[:, :width].astype(bool)


def connected_components(mask: npt.ArrayLike) -> tuple[int, IntArray, IntArray]:
    """Label the 8-connected components of the set pixels of a mask.

    Args:
        mask: ``HxW`` array; non-zero pixels are foreground.

    Returns:
        (n, labels, sizes): ``n`` = number of labels *including* background 0 (as OpenCV
        counts them); ``labels`` ``HxW`` int64, 0 on background and ``1..n-1`` on the
        components in OpenCV's order; ``sizes`` ``n`` pixel counts, ``sizes[0]`` the
        background's.

    Raises:
        InputError: ``mask`` is not two-dimensional.
    """
    components = _components(_as_mask(mask))
    height, width = components.shape
    labels = np.zeros((height, width + 1), dtype=np.int64)
    np.add.at(labels, (components.row, components.start), components.label)
    np.add.at(labels, (components.row, components.end), -components.label)
    labels = np.cumsum(labels, axis=1)[:, :width]
    return components.count + 1, labels, components.sizes


def remove_small_regions(
    mask: npt.ArrayLike, area_thresh: float, mode: Literal["holes", "islands"]
) -> tuple[BoolArray, bool]:
    """Fill small holes in, or drop small islands from, a mask (the official semantics).

    ``"holes"``: every 8-connected component of the *unset* pixels (including the one
    around the mask) smaller than ``area_thresh`` is filled. ``"islands"``: components of
    the set pixels smaller than ``area_thresh`` are removed; if all are small, the largest
    (the first in label order among equals) is kept.

    Only the mask's bounding box (plus a one-pixel ring, for holes) is labelled: outside
    it everything is unset, and those pixels are counted without being labelled.

    Args:
        mask: ``HxW`` bool.
        area_thresh: regions with fewer pixels than this are small.
        mode: ``"holes"`` or ``"islands"``.

    Returns:
        (mask, changed): the new ``HxW`` bool mask, and whether any region was small (the
        mask is returned as given when not).

    Raises:
        InputError: unknown ``mode`` or a mask that is not ``HxW``.
    """
    if mode not in ("holes", "islands"):
        raise InputError(f"mode must be 'holes' or 'islands'; got {mode!r}")
    original = _as_mask(mask)
    rows = np.flatnonzero(original.any(axis=1))
    if len(rows) == 0:  # no set pixel: no islands; one hole, the whole image
        whole_is_small = original.size < area_thresh
        if mode == "holes" and whole_is_small:
            return np.ones_like(original), True
        return original, False
    cols = np.flatnonzero(original.any(axis=0))
    box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
    if mode == "holes":
        return _fill_holes(original, area_thresh, box)
    y0, y1, x0, x1 = box
    y0, x0 = y0 - y0 % 2, x0 - x0 % 2  # even corner: OpenCV's 2x2 blocks (label order) align
    components = _components(original[y0:y1, x0:x1])
    small = components.sizes[1:] < area_thresh
    if not small.any():
        return original, False
    chosen = np.concatenate(([False], ~small))
    if not chosen.any():
        chosen[int(np.argmax(components.sizes[1:])) + 1] = True
    out = np.zeros_like(original)
    out[y0:y1, x0:x1] = components.paint(chosen)
    return out, True


def _fill_holes(
    mask: BoolArray, area_thresh: float, box: tuple[int, int, int, int]
) -> tuple[BoolArray, bool]:
    """Holes mode, labelling the bounding box ``(y0, y1, x0, x1)`` and a one-pixel ring.

    Outside the box all pixels are unset. They form up to four parts (the rows above and
    below, then the columns left and right beside the box), each connected and touching
    the ring, so each belongs to the component of its ring pixels.
    """
    height, width = mask.shape
    y0, y1, x0, x1 = box
    wy0, wy1, wx0, wx1 = max(y0 - 1, 0), min(y1 + 1, height), max(x0 - 1, 0), min(x1 + 1, width)
    window = mask[wy0:wy1, wx0:wx1]
    holes = _components(~window)
    labels_at = _label_lookup(holes)
    sizes = holes.sizes.copy()
    # (part outside the box, one of its ring pixels in window coordinates, its ring pixels)
    parts: list[tuple[tuple[slice, slice], tuple[int, int], int]] = []
    if y0 > 0:
        parts.append(((slice(0, y0), slice(0, width)), (0, 0), wx1 - wx0))
    if y1 < height:
        parts.append(((slice(y1, height), slice(0, width)), (wy1 - wy0 - 1, 0), wx1 - wx0))
    if x0 > 0:
        parts.append(((slice(y0, y1), slice(0, x0)), (y0 - wy0, 0), y1 - y0))
    if x1 < width:
        parts.append(((slice(y0, y1), slice(x1, width)), (y0 - wy0, wx1 - wx0 - 1), y1 - y0))
    part_labels = []
    for (rows, cols), pixel, ring in parts:
        label = labels_at(*pixel)
        sizes[label] += (rows.stop - rows.start) * (cols.stop - cols.start) - ring
        part_labels.append(label)
    small = sizes[1:] < area_thresh
    if not small.any():
        return mask, False
    chosen = np.concatenate(([False], small))
    out = mask.copy()
    out[wy0:wy1, wx0:wx1] |= holes.paint(chosen)
    for ((rows, cols), _, _), label in zip(parts, part_labels, strict=True):
        if chosen[label]:
            out[rows, cols] = True
    return out, True


def _as_mask(mask: npt.ArrayLike) -> BoolArray:
    array = np.asarray(mask).astype(bool, copy=False)
    if array.ndim != 2:
        raise InputError(f"a mask must be HxW (two-dimensional); got shape {array.shape}")
    return array


def _components(fg: BoolArray) -> _Components:
    """The 8-connected components of ``fg``'s set pixels, as runs."""
    height, width = fg.shape
    padded = np.zeros((height, width + 2), dtype=np.int8)
    padded[:, 1:-1] = fg
    step = np.diff(padded, axis=1)  # +1 where a run starts, -1 one past where it ends
    row, start = (a.astype(np.int64) for a in np.nonzero(step == 1))
    end = np.nonzero(step == -1)[1].astype(np.int64)  # same (raster) order as the starts
    count = len(row)
    if count == 0:
        empty = np.zeros(0, dtype=np.int64)
        sizes = np.array([height * width], dtype=np.int64)
        return _Components((height, width), empty, empty, empty, empty, sizes)
    roots = _union_find(count, _touching_runs(row, start, end, width))
    # OpenCV's order: by the first 2x2 block (in raster order of blocks) a component holds
    blocks_per_row = (width + 1) // 2
    run_keys = (row // 2) * blocks_per_row + start // 2
    component_keys = np.full(count, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(component_keys, roots, run_keys)
    root_ids = np.flatnonzero(roots == np.arange(count))
    ranked = root_ids[np.argsort(component_keys[root_ids], kind="stable")]
    label_of_root = np.zeros(count, dtype=np.int64)
    label_of_root[ranked] = np.arange(1, len(ranked) + 1)
    label = label_of_root[roots]
    sizes = np.bincount(label, weights=end - start, minlength=len(ranked) + 1).astype(np.int64)
    sizes[0] = height * width - int((end - start).sum())
    return _Components((height, width), row, start, end, label, sizes)


def _touching_runs(
    row: IntArray, start: IntArray, end: IntArray, width: int
) -> tuple[IntArray, IntArray]:
    """Pairs (upper run, lower run) in consecutive rows that are 8-connected.

    Runs are in raster order, so within a row both starts and ends increase. The runs of
    row ``r - 1`` touching run ``[s, e)`` of row ``r`` are those with ``end >= s`` and
    ``start <= e`` (one pixel of diagonal reach): a contiguous range, found by binary
    search on ``row * (width + 2) + end`` and ``row * (width + 2) + start``.
    """
    stride = width + 2
    end_keys = row * stride + end
    start_keys = row * stride + start
    above = (row - 1) * stride
    first = np.searchsorted(end_keys, above + start, side="left")
    stop = np.searchsorted(start_keys, above + end, side="right")
    counts = np.maximum(stop - first, 0)
    lower = np.repeat(np.arange(len(row)), counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    upper = np.repeat(first, counts) + offsets
    return upper.astype(np.int64), lower.astype(np.int64)


def _union_find(count: int, edges: tuple[IntArray, IntArray]) -> IntArray:
    """Root (smallest member) of every node's component, given undirected edges."""
    parent = np.arange(count, dtype=np.int64)
    first, second = edges
    while len(first):
        a, b = parent[first], parent[second]
        open_ = a != b
        first, second, a, b = first[open_], second[open_], a[open_], b[open_]
        if not len(first):
            break
        np.minimum.at(parent, np.maximum(a, b), np.minimum(a, b))
        while True:  # path compression until every node points at its root
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return parent


def _label_lookup(components: _Components) -> Callable[[int, int], int]:
    """A function (y, x) -> component label (0 for unset pixels) of ``components``."""

    def label_at(y: int, x: int) -> int:
        in_row = np.flatnonzero(components.row == y)
        hit = in_row[(components.start[in_row] <= x) & (x < components.end[in_row])]
        return int(components.label[hit[0]]) if len(hit) else 0

    return label_at


def clean_small_regions(
    kept: Candidates, size: tuple[int, int], area: int, nms_thresh: float
) -> Candidates:
    """Fill holes and drop islands smaller than ``area`` pixels in every mask of ``kept``
    (an image of ``size`` = ``(H, W)``), then NMS again at ``nms_thresh``, preferring the
    unchanged masks (the official generator's ``postprocess_small_regions``).

    Masks are decoded one at a time; a changed mask's new RLE and box replace the old ones
    only if it survives the NMS (boxes of unchanged masks are kept as they were).
    """
    new_rles: dict[int, Counts] = {}
    new_boxes = torch.zeros((len(kept), 4), dtype=torch.int64)
    unchanged = torch.zeros(len(kept), dtype=torch.float32)
    whole = [0, 0, size[1], size[0]]
    for i, counts in enumerate(kept.rles):
        mask = counts_to_mask(counts, size)
        mask, filled = remove_small_regions(mask, area, "holes")
        mask, dropped = remove_small_regions(mask, area, "islands")
        tensor = torch.from_numpy(mask)[None]
        new_boxes[i] = masks_to_boxes(tensor)[0]
        if filled or dropped:
            new_rles[i] = masks_to_rle_counts(tensor, whole, size)[0]
        else:
            unchanged[i] = 1.0
    keep = nms(new_boxes, unchanged, nms_thresh)
    for i in keep.tolist():
        if i in new_rles:
            kept.rles[i] = new_rles[i]
            kept.boxes[i] = new_boxes[i]
    return kept.select(keep)
