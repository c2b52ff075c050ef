"""Evaluation: promptable mIoU by prompt type (more metrics come with SegEvery)."""

from .promptable import PROMPT_TYPES, evaluate_promptable, summarize

__all__ = ["PROMPT_TYPES", "evaluate_promptable", "summarize"]
