"""SAM's training losses: focal + dice on masks, MSE on the IoU head."""

from __future__ import annotations

import torch
import torch.nn.functional as F

RANK_SCALE = 20.0  # predicted IoU -> logits of the ranking term (0.1 apart: e^2 odds)


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss averaged over pixels.

    Arguments:
      logits: ...xHxW mask logits. targets: ...xHxW floats in {0, 1}.

    Returns:
      (torch.Tensor): the loss per mask, shape ``...``.

    No alpha weighting: with SAM's alpha = 0.25 small models collapse to empty masks
    (see docs/training.md).
    """
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    return (ce * (1 - p_t) ** gamma).flatten(-2).mean(-1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft dice loss per mask: ...xHxW logits and targets -> ``...``."""
    prob = logits.sigmoid().flatten(-2)
    flat = targets.flatten(-2)
    inter = (prob * flat).sum(-1)
    return 1 - (2 * inter + eps) / (prob.sum(-1) + flat.sum(-1) + eps)


def mask_iou(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """IoU of thresholded logits (> 0) with binary targets: ...xHxW -> ``...``."""
    pred = logits > 0
    gt = targets > 0.5
    inter = (pred & gt).flatten(-2).sum(-1).float()
    union = (pred | gt).flatten(-2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))


def segmentation_loss(
    logits: torch.Tensor,
    iou_pred: torch.Tensor,
    targets: torch.Tensor,
    focal_weight: float = 20.0,
    dice_weight: float = 1.0,
    iou_weight: float = 1.0,
    focal_share: float = 1.0,
    rank_weight: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's loss for a batch of prompts with M candidate masks each.

    Arguments:
      logits: PxMxHxW mask logits. iou_pred: PxM predicted IoU. targets: PxHxW {0, 1}.
      focal_share: in [0, 1]; the per-pixel term is ``focal_share * focal_weight * focal
        + (1 - focal_share) * BCE`` (1: SAM's loss; 0: plain BCE, for warm-up).
      rank_weight: with M > 1, adds this times a cross-entropy that asks the highest
        predicted IoU to be the mask with the highest actual IoU (the one a user keeps),
        the predictions scaled by ``RANK_SCALE`` as logits.

    Returns:
      loss (scalar): mean over prompts of the best (lowest) mask loss among the M
        candidates, plus the IoU-head MSE against the actual IoU of every candidate.
      best (torch.Tensor): P indices of the best candidates.
    """
    expanded = targets[:, None].expand_as(logits)
    per_mask = dice_weight * dice_loss(logits, expanded)
    if focal_share > 0:
        per_mask = per_mask + focal_share * focal_weight * focal_loss(logits, expanded)
    if focal_share < 1:
        bce = F.binary_cross_entropy_with_logits(logits, expanded, reduction="none")
        per_mask = per_mask + (1 - focal_share) * bce.flatten(-2).mean(-1)
    best_loss, best = per_mask.min(dim=1)
    with torch.no_grad():
        actual = mask_iou(logits, expanded)
    iou_loss = F.mse_loss(iou_pred.float(), actual)
    total = best_loss.mean() + iou_weight * iou_loss
    if rank_weight > 0 and logits.shape[1] > 1:
        rank = F.cross_entropy(RANK_SCALE * iou_pred.float(), actual.argmax(dim=1))
        total = total + rank_weight * rank
    return total, best
