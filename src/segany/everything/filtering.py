"""SegEvery's mask filters, shared by the point grid and the object-aware box prompts.

The decoder's survivors of the predicted-IoU filter are upsampled, scored for stability,
thresholded, boxed and run-length encoded in chunks of at most ``chunk_pixels``
full-resolution pixels, so no call holds every candidate's full-resolution mask at once.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from segany.predictor import Predictor

from .candidates import Candidates
from .masks import is_box_near_crop_edge, masks_to_boxes, masks_to_rle_counts, stability_score

__all__ = ["FilterOptions", "filter_decoded"]


class FilterOptions(Protocol):
    """What the filters read: the predictor holding the current image (or crop), and the
    options of the same names of :class:`~segany.everything.MaskGenerator`."""

    predictor: Predictor
    stability_score_thresh: float
    stability_score_offset: float
    chunk_pixels: int


def filter_decoded(
    options: FilterOptions,
    low_res: torch.Tensor,
    chosen: torch.Tensor,
    iou_preds: torch.Tensor,
    prompts: np.ndarray,
    crop_box: list[int],
    size: tuple[int, int],
) -> Candidates:
    """Filter and encode the decoded survivors, a memory-bounded chunk at a time.

    ``low_res``: Kxhxw low-res logits of the survivors of the IoU filter, ``chosen`` their
    K flat indices into ``iou_preds`` (``B x masks-per-prompt``, prompt-major);
    ``prompts``: Bx2 points or Bx4 boxes. Boxes stay in the crop's frame; RLEs are of
    whole-image (``size``) masks.
    """
    repeats = len(iou_preds) // len(prompts)
    point_of = np.repeat(prompts, repeats, axis=0)
    crop_h, crop_w = crop_box[3] - crop_box[1], crop_box[2] - crop_box[0]
    image_size = options.predictor.model.image_size
    per_mask = image_size * image_size + crop_h * crop_w
    chunk = max(3, options.chunk_pixels // per_mask // 3 * 3)
    parts = []
    for start in range(0, len(chosen), chunk):
        index = chosen[start : start + chunk]
        logits = low_res[start : start + chunk]
        parts.append(_filter_chunk(options, logits, index, iou_preds, point_of, crop_box, size))
    return Candidates.concat(parts)


def _upsample(predictor: Predictor, low_res: torch.Tensor) -> torch.Tensor:
    """Kxhxw low-res logits -> KxHxW logits at the current crop's size.

    Masks go through the model's postprocessing in groups of three, the shape the
    decoder's multimask output has: PyTorch's bilinear kernel takes a different
    (equally valid, but not bit-identical) path for other channel counts.
    """
    count = low_res.shape[0]
    pad = -count % 3
    if pad:
        low_res = torch.cat([low_res, low_res.new_zeros((pad, *low_res.shape[1:]))])
    grouped = low_res.reshape(-1, 3, *low_res.shape[1:])
    full = predictor.model.postprocess_masks(grouped, predictor.input_size, predictor.original_size)
    return full.flatten(0, 1)[:count]


def _filter_chunk(
    options: FilterOptions,
    low_res: torch.Tensor,
    index: torch.Tensor,
    iou_preds: torch.Tensor,
    point_of: np.ndarray,
    crop_box: list[int],
    size: tuple[int, int],
) -> Candidates:
    """Upsample one chunk, filter it by stability and crop edges, encode the survivors."""
    logits = _upsample(options.predictor, low_res)
    threshold = options.predictor.model.mask_threshold
    stability = stability_score(logits, threshold, options.stability_score_offset)
    masks = logits > threshold
    del logits
    if options.stability_score_thresh > 0.0:
        stable = torch.nonzero(stability >= options.stability_score_thresh).flatten()
        masks, stability, index = masks[stable], stability[stable], index[stable]
    boxes = masks_to_boxes(masks)
    height, width = size
    inside = torch.nonzero(~is_box_near_crop_edge(boxes, crop_box, [0, 0, width, height]))
    inside = inside.flatten()
    masks, boxes = masks[inside], boxes[inside]
    stability, index = stability[inside], index[inside]
    return Candidates(
        rles=masks_to_rle_counts(masks, crop_box, size),
        boxes=boxes.cpu(),
        iou_preds=iou_preds[index].cpu(),
        stability=stability.cpu(),
        points=point_of[index.cpu().numpy()],
        crop_boxes=torch.zeros((len(index), 4), dtype=torch.int64),
    )
