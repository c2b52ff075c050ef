"""Helpers of the page tests: fill polygon rings back into a mask, and the pixels near a
mask's boundary (where a simplified outline may differ from the mask)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fill_rings(rings: Sequence[Sequence[Sequence[float]]], height: int, width: int) -> np.ndarray:
    """Even-odd fill of polygon rings at the pixel centres (x + 0.5, y + 0.5)."""
    crossings = np.zeros((height, width + 1), dtype=np.int64)
    rows = np.arange(height)
    centre = rows + 0.5
    for ring in rings:
        points = np.asarray(ring, dtype=np.float64)
        for (x1, y1), (x2, y2) in zip(points, np.roll(points, -1, axis=0), strict=True):
            if y1 == y2:
                continue
            hit = (y1 <= centre) != (y2 <= centre)
            x = x1 + (centre[hit] - y1) * (x2 - x1) / (y2 - y1)
            # the pixels whose centre is left of the crossing toggle
            k = np.clip(np.ceil(x - 0.5), 0, width).astype(np.int64)
            np.add.at(crossings, (rows[hit], k), 1)
    # pixel x is inside when an odd number of crossings lie right of its centre
    right = np.cumsum(crossings[:, ::-1], axis=1)[:, ::-1][:, 1:]
    return np.asarray(right % 2 == 1)


def grow(mask: np.ndarray, steps: int) -> np.ndarray:
    """The mask dilated by a 3x3 square `steps` times."""
    grown = np.pad(mask, steps)
    for _ in range(steps):
        was = grown.copy()
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                grown |= np.roll(np.roll(was, dy, axis=0), dx, axis=1)
    return np.asarray(grown[steps:-steps, steps:-steps])


def near_boundary(mask: np.ndarray, distance: int = 2) -> np.ndarray:
    """The pixels within `distance` (chessboard) of the boundary of a bool mask."""
    return grow(mask, distance) & grow(~mask, distance)
