"""The generator's working set: masks as RLE counts plus a few numbers per mask."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .masks import Counts

__all__ = ["Candidates"]


@dataclass
class Candidates:
    """Masks kept so far, N of them, in the whole image's frame.

    rles: N uncompressed RLE counts (column-major, see :mod:`.masks`); boxes: Nx4 int64
    XYXY (inclusive right/bottom); iou_preds, stability: N float32; points: Nx2 float64
    (x, y) prompts; crop_boxes: Nx4 int64 XYXY crops the masks came from.
    """

    rles: list[Counts] = field(default_factory=list)
    boxes: torch.Tensor = field(default_factory=lambda: torch.zeros((0, 4), dtype=torch.int64))
    iou_preds: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    stability: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    crop_boxes: torch.Tensor = field(default_factory=lambda: torch.zeros((0, 4), dtype=torch.int64))

    def __len__(self) -> int:
        return len(self.rles)

    def select(self, keep: torch.Tensor) -> Candidates:
        """The candidates at indices ``keep`` (int64), in that order."""
        index = keep.cpu().numpy()
        return Candidates(
            rles=[self.rles[i] for i in index.tolist()],
            boxes=self.boxes[keep],
            iou_preds=self.iou_preds[keep],
            stability=self.stability[keep],
            points=self.points[index],
            crop_boxes=self.crop_boxes[keep],
        )

    @staticmethod
    def concat(parts: Sequence[Candidates]) -> Candidates:
        if not parts:
            return Candidates()
        return Candidates(
            rles=[rle for part in parts for rle in part.rles],
            boxes=torch.cat([p.boxes for p in parts]),
            iou_preds=torch.cat([p.iou_preds for p in parts]),
            stability=torch.cat([p.stability for p in parts]),
            points=np.concatenate([p.points for p in parts]),
            crop_boxes=torch.cat([p.crop_boxes for p in parts]),
        )
