"""One step of SAM-style promptable training (simulated interactive sessions)."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from ..data.masks import interior_points
from ..models.sam import Sam
from .config import TrainConfig
from .losses import mask_iou, segmentation_loss
from .prompting import corrective_points, noisy_boxes, random_points
from .targets import SceneTensors


def choose_objects(
    scene: SceneTensors,
    count: int,
    power: float,
    generator: torch.Generator,
    min_area: int = 1,
) -> torch.Tensor:
    """Indices of ``count`` objects, small ones favoured (weight ∝ area^-power).

    Objects under ``min_area`` low-res pixels are skipped unless none is larger.
    """
    areas = scene.masks.flatten(1).sum(1).float()
    valid = areas >= min_area
    if not bool(valid.any()):
        valid = areas > 0
    weights = torch.where(valid, areas.clamp(min=1) ** -power, torch.zeros_like(areas))
    if not bool(valid.any()):
        return torch.zeros(0, dtype=torch.long)
    replace = int(valid.sum()) < count
    return torch.multinomial(weights, count, replacement=replace, generator=generator)


def train_step(
    model: Sam,
    scenes: list[SceneTensors],
    config: TrainConfig,
    generator: torch.Generator,
    step: int = 0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Forward pass of one step: returns the loss and metrics (IoU after each click)."""
    bce = step < config.bce_warmup_steps
    clicks = config.clicks if step >= config.clicks_from_step else 0
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if config.bf16 else nullcontext()
    size = model.image_size
    images = torch.cat([model.preprocess(s.image[None].float()) for s in scenes])
    min_area = config.warmup_min_area if bce else 1
    picks = [
        choose_objects(s, config.prompts_per_image, config.small_object_power, generator, min_area)
        for s in scenes
    ]
    image_index = torch.cat([torch.full((len(p),), i) for i, p in enumerate(picks)])
    targets = torch.cat([s.masks[p] for s, p in zip(scenes, picks, strict=True)])
    gt_boxes = torch.cat([s.boxes[p] for s, p in zip(scenes, picks, strict=True)])
    scale = scenes[0].scale
    count = len(targets)

    is_box = torch.rand(count, generator=generator) < config.box_fraction
    first = random_points(targets, scale, generator)
    centre = torch.rand(count, generator=generator) < config.centre_fraction
    if bool(centre.any()):
        first[centre] = interior_points(targets[centre]) * scale
    boxes = noisy_boxes(gt_boxes, config.box_noise, config.box_max_shift, size, generator)
    coords = first[:, None, :]
    labels = torch.ones((count, 1), dtype=torch.long)
    targets_f = targets.float()

    with autocast:
        embeddings = model.image_encoder(images)
    dense_pe = model.prompt_encoder.get_dense_pe()
    total = torch.zeros(())
    metrics: dict[str, float] = {}
    mask_input: torch.Tensor | None = None
    for it in range(clicks + 1):
        chosen = torch.zeros((count, 1, *targets.shape[-2:]))
        for group in (is_box, ~is_box):
            idx = group.nonzero()[:, 0]
            if len(idx) == 0:
                continue
            with_box = bool(is_box[idx[0]])
            n_points = it if with_box else it + 1
            points = (coords[idx, -n_points:], labels[idx, -n_points:]) if n_points else None
            with autocast:
                sparse, dense = model.prompt_encoder(
                    points=points,
                    boxes=boxes[idx] if with_box else None,
                    masks=None if mask_input is None else mask_input[idx],
                )
                multimask = it == 0 and not with_box
                logits, iou = model.mask_decoder(
                    embeddings[image_index[idx]], dense_pe, sparse, dense, multimask
                )
            logits = logits.float()
            loss, _ = segmentation_loss(
                logits, iou.float(), targets_f[idx], config.focal_weight,
                config.dice_weight, config.iou_weight, bce,
            )  # fmt: skip
            total = total + loss * (len(idx) / count)
            pick = iou.float().argmax(1)  # as a user would: the best-scored mask
            chosen[idx] = logits[torch.arange(len(idx)), pick][:, None].detach()
        with torch.no_grad():
            metrics[f"iou_click{it}"] = float(mask_iou(chosen[:, 0], targets_f).mean())
        if it < clicks:
            new_points, new_labels = corrective_points(chosen[:, 0] > 0, targets, scale, generator)
            coords = torch.cat([coords, new_points[:, None]], dim=1)
            labels = torch.cat([labels, new_labels[:, None]], dim=1)
            mask_input = chosen
    return total / (clicks + 1), metrics
