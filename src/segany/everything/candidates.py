"""The generator's working set: masks as RLE counts plus a few numbers per mask."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..data.rle import encode_counts
from .masks import Counts, box_xyxy_to_xywh, counts_area, counts_to_mask

__all__ = ["Candidates", "to_record"]


@dataclass
class Candidates:
    """Masks kept so far, N of them, in the whole image's frame.

    rles: N uncompressed RLE counts (column-major, see :mod:`.masks`); boxes: Nx4 int64
    XYXY (inclusive right/bottom); iou_preds, stability: N float32; points: Nx2 float64
    (x, y) point prompts, or Nx4 XYXY box prompts; crop_boxes: Nx4 int64 XYXY crops the
    masks came from.
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


def to_record(kept: Candidates, i: int, size: tuple[int, int], output_mode: str) -> dict[str, Any]:
    """Candidate ``i`` as an official SegEvery record (see ``MaskGenerator.generate``)."""
    counts = kept.rles[i]
    prompt = kept.points[i]
    segmentation: Any
    if output_mode == "binary_mask":
        segmentation = counts_to_mask(counts, size)
    elif output_mode == "coco_rle":
        segmentation = {"size": list(size), "counts": encode_counts(counts.tolist())}
    else:
        segmentation = {"size": list(size), "counts": counts.tolist()}
    point = prompt if len(prompt) == 2 else (prompt[:2] + prompt[2:]) / 2
    record = {
        "segmentation": segmentation,
        "area": counts_area(counts),
        "bbox": box_xyxy_to_xywh(kept.boxes[i].tolist()),
        "predicted_iou": float(kept.iou_preds[i]),
        "point_coords": [[float(v) for v in point]],
        "stability_score": float(kept.stability[i]),
        "crop_box": box_xyxy_to_xywh(kept.crop_boxes[i].tolist()),
    }
    if len(prompt) == 4:  # a box prompt (strategy "objects"), XYWH like bbox
        x0, y0, x1, y1 = (float(v) for v in prompt)
        record["prompt_box"] = [x0, y0, x1 - x0, y1 - y0]
    return record
