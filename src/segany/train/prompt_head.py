"""Training the object-proposal head (:mod:`segany.models.prompt_head`) on a frozen model.

The head learns from boxes: the ground truth of generated scenes, or, on a user's own
unlabelled images, the boxes of grid SegEvery's masks (distillation: the slow grid search
teaches the fast head). The image encoder is frozen, so each image is encoded once and
its embedding kept (in bf16) for all epochs.

Targets (CenterNet): per scale slot a heat map with a Gaussian bump at each box's centre
cell (penalty-reduced focal loss, alpha 2, beta 4), and at that cell the centre's offset
and the log size (L1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ..models.prompt_head import PromptHead, PromptHeadConfig, decode_boxes
from ..predictor import Predictor

__all__ = [
    "HeadExample",
    "HeadTrainConfig",
    "box_recall",
    "collect_examples",
    "head_loss",
    "head_targets",
    "train_prompt_head",
]


@dataclass(frozen=True)
class HeadExample:
    """One image: its 1xCxhxw embedding (bf16) and Nx4 XYXY boxes in the input frame."""

    embedding: torch.Tensor
    boxes: torch.Tensor


@dataclass(frozen=True)
class HeadTrainConfig:
    """Settings of :func:`train_prompt_head`."""

    epochs: int = 30
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    hidden: int = 96
    box_weight: float = 1.0
    seed: int = 0


def collect_examples(
    predictor: Predictor,
    items: Iterable[tuple[np.ndarray, np.ndarray]],
    progress: bool = True,
    total: int | None = None,
) -> list[HeadExample]:
    """Encode each ``(HxWx3 uint8 image, Nx4 XYXY boxes in its pixels)`` once.

    Boxes are moved to the model's input frame (as the predictor resizes the image).
    """
    out = []
    for image, boxes in tqdm(items, total=total, unit="image", disable=not progress):
        predictor.set_image(image)
        embedding = predictor.get_image_embedding().to(torch.bfloat16)
        scaled = predictor.transform.apply_boxes(np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                                                 predictor.original_size)  # fmt: skip
        out.append(HeadExample(embedding, torch.as_tensor(scaled, dtype=torch.float32)))
        predictor.reset_image()
    return out


def head_targets(
    boxes: torch.Tensor, size: tuple[int, int], cell: float, edges: tuple[float, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targets for one image.

    Arguments:
      boxes: Nx4 XYXY in input pixels. size: (h, w) of the embedding. cell: input pixels
        per cell. edges: the head's slot edges (box side in cells).

    Returns:
      heat Sxhxw in [0, 1] (1 exactly at centre cells), regression Sx4xhxw targets
      (dx, dy in [0, 1), log w, log h in cells) and an Sxhxw bool mask of the centre cells.
    """
    h, w = size
    slots = len(edges) + 1
    heat = torch.zeros((slots, h, w))
    reg = torch.zeros((slots, 4, h, w))
    at = torch.zeros((slots, h, w), dtype=torch.bool)
    if len(boxes) == 0:
        return heat, reg, at
    b = boxes.float() / cell
    bw = (b[:, 2] - b[:, 0]).clamp(min=0.25)
    bh = (b[:, 3] - b[:, 1]).clamp(min=0.25)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    slot = torch.bucketize((bw * bh).sqrt(), torch.tensor(edges))
    col = cx.floor().long().clamp(0, w - 1)
    row = cy.floor().long().clamp(0, h - 1)
    ys = torch.arange(h).float()[:, None] + 0.5
    xs = torch.arange(w).float()[None, :] + 0.5
    # Smaller boxes last: where two share a cell and slot, the smaller one is the target.
    for i in torch.argsort(bw * bh, descending=True).tolist():
        s = int(slot[i])
        sigma = max(0.4, float((bw[i] * bh[i]).sqrt()) / 6)
        bump = torch.exp(-((xs - cx[i]) ** 2 + (ys - cy[i]) ** 2) / (2 * sigma**2))
        heat[s] = torch.maximum(heat[s], bump)
        r, c = int(row[i]), int(col[i])
        heat[s, r, c] = 1.0
        at[s, r, c] = True
        reg[s, :, r, c] = torch.stack([cx[i] - c, cy[i] - r, bw[i].log(), bh[i].log()]).clamp(
            min=-10.0
        )
    return heat, reg, at


def head_loss(
    objectness: torch.Tensor,
    boxes: torch.Tensor,
    heat: torch.Tensor,
    reg: torch.Tensor,
    at: torch.Tensor,
    box_weight: float = 1.0,
) -> torch.Tensor:
    """CenterNet's loss for a batch.

    objectness: BxSxhxw logits; boxes: BxSx4xhxw; heat, at: BxSxhxw; reg: BxSx4xhxw.
    """
    logits = objectness.float()
    prob = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    log_p = torch.nn.functional.logsigmoid(logits)
    log_not_p = torch.nn.functional.logsigmoid(-logits)
    positive = at.float()
    pos_loss = -((1 - prob) ** 2) * log_p * positive
    neg_loss = -((1 - heat) ** 4) * prob**2 * log_not_p * (1 - positive)
    count = positive.sum().clamp(min=1.0)
    focal = (pos_loss.sum() + neg_loss.sum()) / count
    pred = boxes.float().permute(0, 1, 3, 4, 2)[at]  # Kx4
    target = reg.permute(0, 1, 3, 4, 2)[at]
    if len(pred) == 0:
        return focal
    offset = (pred[:, :2].sigmoid() - target[:, :2]).abs().sum(1)
    size = (pred[:, 2:] - target[:, 2:]).abs().sum(1)
    return focal + box_weight * (offset + size).sum() / count


def train_prompt_head(
    examples: list[HeadExample],
    image_size: int,
    config: HeadTrainConfig = HeadTrainConfig(),
    progress: bool = True,
    log: Callable[[dict[str, float]], object] | None = None,
    init: PromptHead | None = None,
) -> PromptHead:
    """Train a head on ``examples`` (AdamW, cosine decay); returns it in eval mode.

    ``init``: fine-tune this head (e.g. one trained with the model) instead of a new one.
    """
    if not examples:
        raise ValueError("no training examples")
    torch.manual_seed(config.seed)
    _, chans, h, w = examples[0].embedding.shape
    head = init or PromptHead(PromptHeadConfig(in_chans=chans, hidden=config.hidden))
    if head.config.in_chans != chans:
        raise ValueError(f"the head reads {head.config.in_chans} channels, the model gives {chans}")
    edges = head.config.slot_edges
    cell = image_size / w
    targets = [head_targets(e.boxes, (h, w), cell, edges) for e in examples]
    steps_per_epoch = math.ceil(len(examples) / config.batch_size)
    total = config.epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step / total, 1.0)))
    )
    generator = torch.Generator().manual_seed(config.seed)
    head.train()
    bar = tqdm(total=total, unit="step", disable=not progress)
    for epoch in range(config.epochs):
        order = torch.randperm(len(examples), generator=generator).tolist()
        running = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            x = torch.cat([examples[i].embedding for i in batch]).float()
            heat, reg, at = (torch.stack([targets[i][k] for i in batch]) for k in range(3))
            objectness, boxes = head(x)
            loss = head_loss(objectness, boxes, heat, reg, at, config.box_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            running += float(loss.detach()) * len(batch)
            bar.update(1)
        bar.set_postfix(loss=f"{running / len(order):.3f}")
        if log is not None:
            log({"epoch": epoch + 1, "loss": running / len(order)})
    bar.close()
    return head.eval()


@torch.inference_mode()
def box_recall(
    head: PromptHead,
    examples: list[HeadExample],
    image_size: int,
    conf: float = 0.1,
    max_boxes: int = 320,
) -> dict[str, float]:
    """How many ground-truth boxes the head finds: recall at box IoU 0.5 and 0.7.

    Returns ``recall@0.5``, ``recall@0.7`` and ``boxes_per_image`` (at ``conf``).
    """
    from ..everything.sources import box_iou

    found = {0.5: 0, 0.7: 0}
    truths = proposals = 0
    for example in examples:
        objectness, params = head(example.embedding.float())
        cell = image_size / objectness.shape[-1]
        boxes, _ = decode_boxes(objectness, params, cell, conf, max_boxes)[0]
        truths += len(example.boxes)
        proposals += len(boxes)
        if len(boxes) and len(example.boxes):
            best = box_iou(example.boxes, boxes).max(1).values
            for threshold in found:
                found[threshold] += int((best >= threshold).sum())
    return {
        "recall@0.5": found[0.5] / max(truths, 1),
        "recall@0.7": found[0.7] / max(truths, 1),
        "boxes_per_image": proposals / max(len(examples), 1),
    }
