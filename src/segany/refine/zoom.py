"""Answering clicks on zoomed crops as well as on the whole image.

A small model sees a small object as a few tokens of its embedding (2x2 at stride 16 for
an object of 32x32 input pixels) and answers a click on it poorly; the same model given a
crop around the click, resized to its input size, sees the object several times larger.
A :class:`~segany.refine.StagedPredictor` with a :class:`ClickZoom` answers a click
prompt on the whole image and on square crops centred on the clicks, each encoded once
(and kept, so later clicks nearby cost no encoder run), and keeps the answer whose best
predicted IoU is highest (docs/training.md, "Clicks answered on zoomed crops").

Low-res logits move between frames by resampling (:func:`resample_logits`): a zoomed
answer's logits are returned in the whole image's frame, so they can be passed back as
``mask_input`` as usual, and a ``mask_input`` is resampled into each crop's frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

OUTSIDE = -20.0  # the logit given to low-res cells outside a frame's image


@dataclass(frozen=True)
class ClickZoom:
    """Which crops a click prompt is also answered on.

    windows: the crops' sides as fractions of the image's longest side (0.5: a crop of
      half the image, seen at twice the scale), but at least ``min_side`` pixels (a
      smaller crop has too few pixels to show more); crops of 90 % of the image or more
      are skipped (they show nothing new).
    grid: crops start on multiples of ``grid`` x their side, so clicks close together
      share a crop, and its cached embedding.
    cache_size: crop embeddings kept per predictor.
    """

    windows: tuple[float, ...] = (0.5, 0.2)
    min_side: int = 96
    grid: float = 0.25
    cache_size: int = 16

    def __post_init__(self) -> None:
        if not self.windows or not all(0.0 < w < 1.0 for w in self.windows):
            raise ValueError(f"windows must be fractions in (0, 1), got {self.windows}")
        if self.min_side < 1 or not 0.0 < self.grid <= 1.0 or self.cache_size < 0:
            raise ValueError("min_side must be >= 1, grid in (0, 1] and cache_size >= 0")

    def crops(
        self, size: tuple[int, int], points: np.ndarray, labels: np.ndarray
    ) -> list[tuple[int, int, int, int]]:
        """XYXY crops (exclusive ends) of an image of ``size`` (H, W) for Nx2 clicks: one
        per window that holds every positive click at least a quarter side from its edges
        (negative clicks outside a crop are dropped there)."""
        height, width = size
        positive = points[labels == 1]
        if len(positive) == 0:
            return []
        low, high = positive.min(0), positive.max(0)
        crops = []
        for fraction in self.windows:
            side = max(int(round(fraction * max(height, width))), self.min_side)
            if side >= 0.9 * max(height, width) or np.any(high - low > side / 2):
                continue
            step = max(1, int(round(side * self.grid)))
            corner = []
            for centre, extent in zip((low + high) / 2, (width, height), strict=True):
                start = int(round((centre - side / 2) / step)) * step
                corner.append(int(np.clip(start, 0, max(extent - side, 0))))
            x0, y0 = corner
            crops.append((x0, y0, min(x0 + side, width), min(y0 + side, height)))
        return crops


@dataclass(frozen=True)
class Frame:
    """Where a low-res logit grid sits on the original image: cell (0, 0) starts at
    ``origin`` (x, y) and a cell is ``cell`` original pixels wide."""

    origin: tuple[float, float]
    cell: float


def frame_of(rect: tuple[int, int, int, int], cells: int) -> Frame:
    """The frame of a model's low-res logits (``cells`` a side, covering the padded square
    input) for the XYXY ``rect`` of the original image that it was given."""
    x0, y0, x1, y1 = rect
    return Frame((float(x0), float(y0)), max(x1 - x0, y1 - y0) / cells)


def resample_logits(logits: torch.Tensor, source: Frame, target: Frame) -> torch.Tensor:
    """BxCxhxw low-res ``logits`` in ``source``'s frame, resampled (bilinear) into
    ``target``'s frame, same grid size; cells outside ``source`` get :data:`OUTSIDE`."""
    cells = logits.shape[-1]
    steps = (torch.arange(cells, dtype=torch.float32) + 0.5) * target.cell
    axes = []
    for k in (0, 1):  # x, then y: original pixels -> source's normalised coordinates
        pixel = steps + target.origin[k]
        axes.append(2.0 * (pixel - source.origin[k]) / (source.cell * cells) - 1.0)
    grid_y, grid_x = torch.meshgrid(axes[1], axes[0], indexing="ij")
    grid = torch.stack([grid_x, grid_y], dim=-1)[None].expand(len(logits), -1, -1, -1)
    shifted = logits.float() - OUTSIDE  # zero padding then means OUTSIDE
    out = F.grid_sample(shifted, grid.to(logits.device), align_corners=False)
    return (out + OUTSIDE).to(logits.dtype)
