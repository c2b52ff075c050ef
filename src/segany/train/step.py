"""One step of SAM-style promptable training (simulated interactive sessions)."""

from __future__ import annotations

import torch

from ..data.masks import interior_points
from ..engine import predict_masks_shared
from ..engine.hardware import bf16_autocast
from ..models.mask_decoder import output_slice
from ..models.prompt_head import PromptHead
from ..models.sam import Sam
from .config import TrainConfig
from .grouping import GroupingProbe, grouping_loss
from .losses import mask_iou, segmentation_loss
from .prompt_head import head_loss, head_targets
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
    probe: GroupingProbe | None = None,
    head: PromptHead | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Forward pass of one step: returns the loss and metrics (IoU after each click).

    With ``probe``, the encoder also gets the dense grouping loss (:mod:`.grouping`),
    weighted by ``config.grouping_weight``; with ``head``, the prompt head's loss on the
    scenes' boxes (:mod:`.prompt_head`), weighted by ``config.prompt_head_weight``.
    """
    focal_share = config.focal_share(step)
    clicks = config.clicks if step >= config.clicks_from_step else 0
    size = model.image_size
    images = torch.cat([model.preprocess(s.image[None].float()) for s in scenes])
    min_area = config.min_object_area(step)
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

    regions = None
    maps = [s.regions for s in scenes if s.regions is not None]
    if probe is not None and len(maps) == len(scenes):
        # the region at the centre of each embedding cell
        cell = scenes[0].masks.shape[-1] // model.prompt_encoder.image_embedding_size[0]
        regions = torch.stack(maps)[:, cell // 2 :: cell, cell // 2 :: cell]
    with bf16_autocast(config.bf16):
        loss, metrics, embeddings = _sessions(
            model, images, image_index, targets, is_box, boxes, coords, labels,
            config, generator, focal_share, clicks, scale, probe, regions,
        )  # fmt: skip
    if head is not None:
        grid = (int(embeddings.shape[-2]), int(embeddings.shape[-1]))
        pixels = model.image_size / grid[1]
        edges = head.config.slot_edges
        per_scene = [head_targets(s.boxes, grid, pixels, edges) for s in scenes]
        heat, reg, at = (torch.stack(t) for t in zip(*per_scene, strict=True))
        objectness, params = head(embeddings.float())
        box_loss = head_loss(objectness, params, heat, reg, at)
        metrics["head_loss"] = float(box_loss.detach())
        loss = loss + config.prompt_head_weight * box_loss
    return loss, metrics


def _sessions(
    model: Sam,
    images: torch.Tensor,
    image_index: torch.Tensor,
    targets: torch.Tensor,
    is_box: torch.Tensor,
    boxes: torch.Tensor,
    coords: torch.Tensor,
    labels: torch.Tensor,
    config: TrainConfig,
    generator: torch.Generator,
    focal_share: float,
    clicks: int,
    scale: float,
    probe: GroupingProbe | None = None,
    regions: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """The simulated interactive sessions of one step (first prompt, then clicks).

    Returns the loss, metrics and the BxCxhxw image embeddings.

    Arguments:
      images: Bx3xSxS preprocessed. image_index: P image of each prompt. targets: PxLxL
        bool. is_box: P bool. boxes: Px4 noisy boxes. coords: Px1x2 first points, labels:
        Px1 (used where not ``is_box``).
    """
    count = len(targets)
    targets_f = targets.float()
    embeddings = model.image_encoder(images)
    grouping = None
    if probe is not None and regions is not None:
        grouping = grouping_loss(probe(embeddings).float(), regions)
    per_image = torch.bincount(image_index, minlength=len(images))
    if bool((per_image == per_image[0]).all()):
        decoder_images = embeddings  # prompts come in equal groups, one per image
    else:
        decoder_images = embeddings[image_index]
    dense_pe = model.prompt_encoder.get_dense_pe()
    groups = [(idx, bool(is_box[idx[0]])) for idx in (is_box.nonzero()[:, 0],
              (~is_box).nonzero()[:, 0]) if len(idx)]  # fmt: skip
    total = torch.zeros(())
    metrics: dict[str, float] = {}
    mask_input: torch.Tensor | None = None
    for it in range(clicks + 1):
        # Box prompts (2 corner tokens + it clicks) and point prompts (it + 1 clicks and a
        # padding token) have the same number of tokens: one decoder call takes both.
        parts = []
        for idx, with_box in groups:
            n_points = it if with_box else it + 1
            points = (coords[idx, -n_points:], labels[idx, -n_points:]) if n_points else None
            sparse, dense = model.prompt_encoder(
                points=points, boxes=boxes[idx] if with_box else None, masks=None
            )
            parts.append(sparse)
        order = torch.cat([idx for idx, _ in groups])
        sparse = torch.empty_like(torch.cat(parts)).index_copy(0, order, torch.cat(parts))
        if mask_input is None:
            dense = dense[:1].expand(count, -1, -1, -1)
        else:
            dense = model.prompt_encoder(points=None, boxes=None, masks=mask_input)[1]
        all_logits, all_iou = predict_masks_shared(
            model.mask_decoder, decoder_images, dense_pe, sparse, dense
        )
        chosen = torch.zeros((count, 1, *targets.shape[-2:]))
        for idx, with_box in groups:
            multimask = it == 0 and not with_box
            which = output_slice(multimask)
            logits = all_logits[idx, which].float()
            iou = all_iou[idx, which].float()
            loss, _ = segmentation_loss(
                logits, iou, targets_f[idx], config.focal_weight,
                config.dice_weight, config.iou_weight, focal_share, config.iou_rank_weight,
            )  # fmt: skip
            total = total + loss * (len(idx) / count)
            pick = iou.argmax(1)  # as a user would: the best-scored mask
            chosen[idx] = logits[torch.arange(len(idx)), pick][:, None].detach()
        with torch.no_grad():
            ious = mask_iou(chosen[:, 0], targets_f)
            metrics[f"iou_click{it}"] = float(ious.mean())
            if it == 0:
                for idx, with_box in groups:
                    metrics["iou_box" if with_box else "iou_point"] = float(ious[idx].mean())
        if it < clicks:
            new_points, new_labels = corrective_points(chosen[:, 0] > 0, targets, scale, generator)
            coords = torch.cat([coords, new_points[:, None]], dim=1)
            labels = torch.cat([labels, new_labels[:, None]], dim=1)
            mask_input = chosen
    total = total / (clicks + 1)
    if grouping is not None:
        metrics["grouping"] = float(grouping.detach())
        total = total + config.grouping_weight * grouping
    return total, metrics, embeddings
