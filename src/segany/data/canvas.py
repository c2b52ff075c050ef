"""Painting layered shapes with occlusion and reading back their visible instance masks.

A :class:`Canvas` holds the image and a *leaf map*: for every pixel, the id of the
deepest instance painted there last (-1 for background). Instances are numbered in
depth-first pre-order (an object, its first part, that part's sub-parts, its second part,
...), so the instances in the subtree of instance ``g`` have ids ``g .. end_g - 1`` and
the visible mask of ``g`` is simply ``(leaf >= g) & (leaf < end_g)``. Painting a new
shape overwrites the leaf map, which is all occlusion takes; visible masks are read back
once, at the end, each inside the bounding box of its shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from segany.data.shapes import Region
from segany.data.textures import Style

__all__ = ["Canvas"]


@dataclass(frozen=True)
class _Node:
    """One painted instance: its kind, parent id, box ``(y0, x0, y1, x1)`` and subtree end."""

    kind: str
    parent: int
    box: tuple[int, int, int, int]
    end: int


class Canvas:
    """An image being painted back to front, with the bookkeeping of its instances.

    Args:
        rng: Source of randomness of the textures painted.
        height, width: Image size.
        background: Fill of the whole image before anything is placed.
    """

    def __init__(self, rng: np.random.Generator, height: int, width: int, background: Style):
        self.rng = rng
        self.height = height
        self.width = width
        #: ``HxWx3`` uint8 RGB, painted in place.
        self.image = np.ascontiguousarray(background.render(rng, height, width))
        #: ``HxW`` int32: id of the instance owning each pixel, -1 for background.
        self.leaf = np.full((height, width), -1, dtype=np.int32)
        self._nodes: list[_Node] = []

    def place(
        self,
        region: Region,
        labels: npt.NDArray[np.integer],
        parents: list[int],
        kinds: list[str],
        styles: list[Style],
    ) -> None:
        """Paint one object (with its parts) over everything placed so far.

        Args:
            region: The object's mask and position.
            labels: ``hxw`` ints, the shape of ``region.mask``: -1 outside the object,
                else the local id of the deepest node owning the pixel (0 = the object).
            parents: Local parent id of each node (-1 for node 0); nodes must be in
                depth-first pre-order, so every parent precedes its children.
            kinds: Name of each node.
            styles: Fill of each node.
        """
        base = len(self._nodes)
        ends = list(range(1, len(parents) + 1))
        for node in range(len(parents) - 1, 0, -1):
            ends[parents[node]] = max(ends[parents[node]], ends[node])
        rows, cols = region.slices
        image = self.image[rows, cols]
        for node, style in enumerate(styles):
            self._paint(image, region.mask if len(styles) == 1 else labels == node, style)
        leaf = self.leaf[rows, cols]
        np.copyto(leaf, labels + base, where=labels >= 0, casting="unsafe")
        box = (region.y0, region.x0, region.y1, region.x1)
        for node, (parent, kind) in enumerate(zip(parents, kinds, strict=True)):
            self._nodes.append(
                _Node(kind, parent + base if parent >= 0 else -1, box, ends[node] + base)
            )

    def instances(
        self, min_area: int, skip_kinds: tuple[str, ...] = ()
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64], npt.NDArray[np.float64], list[str]]:
        """The visible instances with at least ``min_area`` pixels.

        Nodes whose kind is in ``skip_kinds`` (childless nodes such as clutter) are never
        instances: their pixels stay unlabelled background.

        A part whose visible mask equals that of its nearest kept ancestor is dropped as a
        duplicate; the parent of a kept instance is its nearest kept ancestor. Kinds of
        kept parts are renamed ``"part"`` (parent is a whole object) or ``"subpart"``.

        Returns:
            ``masks`` NxHxW bool, ``parent`` N int64 (-1 for whole objects), ``boxes`` Nx4
            float64 XYXY with inclusive maxima, and ``kinds``.
        """
        visible: list[npt.NDArray[np.bool_]] = []
        areas: list[int] = []
        for node_id, node in enumerate(self._nodes):
            y0, x0, y1, x1 = node.box
            crop = self.leaf[y0:y1, x0:x1]
            if node.end == node_id + 1:
                mask = crop == node_id
            else:
                mask = (crop >= node_id) & (crop < node.end)
            visible.append(mask)
            areas.append(int(np.count_nonzero(mask)))
        keep = [
            area >= min_area and node.kind not in skip_kinds
            for area, node in zip(areas, self._nodes, strict=True)
        ]
        ancestor = [-1] * len(self._nodes)
        for node_id, node in enumerate(self._nodes):
            up = node.parent
            while up >= 0 and not keep[up]:
                up = self._nodes[up].parent
            ancestor[node_id] = up
            if keep[node_id] and up >= 0 and areas[node_id] == areas[up]:
                keep[node_id] = False
        kept = [i for i in range(len(self._nodes)) if keep[i]]
        new_index = {old: new for new, old in enumerate(kept)}
        masks = np.zeros((len(kept), self.height, self.width), dtype=bool)
        parent = np.full(len(kept), -1, dtype=np.int64)
        boxes = np.zeros((len(kept), 4), dtype=np.float64)
        kinds: list[str] = []
        for new, old in enumerate(kept):
            y0, x0, y1, x1 = self._nodes[old].box
            masks[new, y0:y1, x0:x1] = visible[old]
            boxes[new] = _tight_box(visible[old], y0, x0)
            up = ancestor[old]
            if up < 0:
                kinds.append(self._nodes[old].kind)
            else:
                parent[new] = new_index[up]
                kinds.append("part" if ancestor[up] < 0 else "subpart")
        return masks, parent, boxes, kinds

    def _paint(
        self, image: npt.NDArray[np.uint8], mask: npt.NDArray[np.bool_], style: Style
    ) -> None:
        """Fill ``mask`` of the ``hxwx3`` view ``image`` with ``style``, in its tight box."""
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            return
        cols = np.flatnonzero(mask.any(axis=0))
        box = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
        fill = style.render(self.rng, box[0].stop - box[0].start, box[1].stop - box[1].start)
        np.copyto(image[box], fill, where=mask[box][:, :, None])


def _tight_box(mask: npt.NDArray[np.bool_], y0: int, x0: int) -> tuple[int, int, int, int]:
    """XYXY box (inclusive maxima) of a non-empty ``hxw`` mask placed at ``(y0, x0)``."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]), y0 + int(rows[-1])
