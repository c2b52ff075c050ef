"""Object-aware SegEvery (MobileSAMv2): one box prompt per object.

Grid SegEvery decodes ``points_per_side^2 x 3`` candidates and throws most away; here a
box source (:mod:`.sources`) says where the objects are and only those boxes are decoded,
in batches: the single-mask output (``masks_per_box=1``, as MobileSAMv2) or the three
multimask outputs (whole / part / sub-part, the default). The masks then go through the
grid's filters (predicted IoU, then :mod:`.filtering`'s stability and crop-edge filters,
then NMS; each can be disabled with 0, or 1 for NMS) and give the same records.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch

from .candidates import Candidates
from .filtering import FilterOptions, filter_decoded
from .masks import nms
from .sources import BoxSource

__all__ = ["ObjectOptions", "process_objects"]


class ObjectOptions(FilterOptions, Protocol):
    """What the object strategy reads: the filters' options and the options of the same
    names of :class:`~segany.everything.MaskGenerator`."""

    prompts: BoxSource | None
    masks_per_box: int
    decoder_batch_size: int
    pred_iou_thresh: float
    box_nms_thresh: float


def process_objects(
    generator: ObjectOptions, image: np.ndarray, size: tuple[int, int], name: str | None
) -> Candidates:
    """Candidates of the whole ``image`` (HxWx3 uint8) from its box prompts."""
    assert generator.prompts is not None
    predictor = generator.predictor
    predictor.set_image(image)
    boxes = generator.prompts(image, predictor, name)
    whole = [0, 0, size[1], size[0]]
    if len(boxes) == 0:
        predictor.reset_image()
        return Candidates()
    low_res, chosen, iou_preds = _decode_boxes(generator, boxes)
    found = filter_decoded(generator, low_res, chosen, iou_preds, boxes, whole, size)
    predictor.reset_image()
    if generator.box_nms_thresh < 1.0 and len(found):
        found = found.select(nms(found.boxes, found.iou_preds, generator.box_nms_thresh))
    found.crop_boxes = torch.tensor([whole], dtype=torch.int64).expand(len(found), 4)
    return found


def _decode_boxes(
    generator: ObjectOptions, boxes: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nx4 XYXY boxes (image pixels) -> survivors of the IoU filter.

    Returns: Kxhxw low-res logits of the survivors, their K flat indices among the NxM
    candidates (M = ``masks_per_box``, box-major), and the NxM predicted IoU, flattened.
    """
    predictor = generator.predictor
    model = predictor.model
    min_iou = generator.pred_iou_thresh if generator.pred_iou_thresh > 0.0 else -math.inf
    scaled = predictor.transform.apply_boxes(boxes, predictor.original_size)
    all_boxes = torch.as_tensor(scaled, dtype=torch.float32, device=model.device)
    multimask = generator.masks_per_box > 1
    logits, scores = [], []
    for start in range(0, len(all_boxes), generator.decoder_batch_size):
        low_res, iou = predictor.predict_low_res(
            None, None, all_boxes[start : start + generator.decoder_batch_size],
            multimask_output=multimask,
        )  # fmt: skip
        logits.append(low_res.flatten(0, 1))
        scores.append(iou.flatten().float())
    iou_preds = torch.cat(scores)
    kept = torch.nonzero(iou_preds > min_iou).flatten()
    return torch.cat(logits)[kept], kept, iou_preds
