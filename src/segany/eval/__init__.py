"""Evaluation: promptable mIoU by prompt type, and class-agnostic mask proposal recall (AR)."""

from .mask_iou import mask_iou_matrix
from .promptable import PROMPT_TYPES, evaluate_promptable, summarize
from .proposals import (
    AREA_RANGES,
    COCO_MAX_DETS,
    IOU_THRESHOLDS,
    LVIS_MAX_DETS,
    Proposals,
    RecallAccumulator,
    RecallResult,
    evaluate_proposals,
    proposal_recall,
    proposals_from_records,
)

__all__ = [
    "AREA_RANGES",
    "COCO_MAX_DETS",
    "IOU_THRESHOLDS",
    "LVIS_MAX_DETS",
    "PROMPT_TYPES",
    "Proposals",
    "RecallAccumulator",
    "RecallResult",
    "evaluate_promptable",
    "evaluate_proposals",
    "mask_iou_matrix",
    "proposal_recall",
    "proposals_from_records",
    "summarize",
]
