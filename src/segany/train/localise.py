"""Decoder warm-up: learn where a prompt points before learning what it points at.

From scratch, SAM's decoder learns to route a prompt's position (Fourier features) to the
image tokens slowly, and until it does, the cheapest answer is an empty mask (see
docs/training.md). Two measures, neither of which changes the architecture:

* :func:`align_attention`: the decoder's attention layers start with equal query and key
  projections (scaled by ``gain``), so that ``q·k`` starts as a positive kernel on the
  Fourier features: an image token attends to prompts near it from the first step;
* :func:`warm_up_decoder`: with a blank image embedding (every image token equal but for
  its position), the decoder learns to fill a box prompt's box, and to answer a point
  with nested disks around it (the ambiguity-aware outputs, best-of-3 loss). No image is
  encoded, so a step costs only the decoder.

Aligned projections learn the geometric task much faster than the default init, and
after the warm-up the main training starts from prompts that already localise
(docs/training.md, 'Against collapse: what makes a from-scratch SAM learn on a CPU').
"""

from __future__ import annotations

import math

import torch
from tqdm import tqdm

from ..engine.hardware import bf16_autocast
from ..models.sam import Sam
from ..models.transformer import Attention, TwoWayAttentionBlock
from .losses import segmentation_loss

__all__ = ["align_attention", "localisation_targets", "warm_up_decoder"]


def align_attention(model: Sam, gain: float = 2.0) -> None:
    """Give every attention layer of the decoder equal query and key projections, in place.

    The query projection is scaled by ``gain`` and copied to the key projection, so each
    layer's ``q·k = x Wᵀ W y`` is a positive semi-definite form: tokens with similar
    positional encodings attend to each other at initialisation.
    """
    transformer = model.mask_decoder.transformer
    layers: list[Attention] = [transformer.final_attn_token_to_image]
    for block in transformer.layers:
        assert isinstance(block, TwoWayAttentionBlock)
        layers += [
            block.self_attn,
            block.cross_attn_token_to_image,
            block.cross_attn_image_to_token,
        ]
    with torch.no_grad():
        for attention in layers:
            attention.q_proj.weight.mul_(gain)
            attention.k_proj.weight.copy_(attention.q_proj.weight)


def localisation_targets(
    count: int, side: int, scale: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random prompts and their geometric targets.

    Arguments:
      count: prompts (half boxes, half points). side: low-res mask side L. scale: input
        pixels per low-res pixel.

    Returns:
      boxes: (count/2)x4 XYXY input-frame boxes; box_masks: (count/2)xLxL.
      points: (count - count/2)x2 input-frame points; point_masks: (count - count/2)xLxL,
        a disk around each point of a radius drawn from 2 to L/3 low-res pixels.
    """
    n_box = count // 2
    n_point = count - n_box
    cells = torch.arange(side, dtype=torch.float32) + 0.5
    corner = torch.rand((n_box, 2), generator=generator) * side * 0.8
    extent = (0.05 + 0.5 * torch.rand((n_box, 2), generator=generator)) * side
    low = corner
    high = torch.minimum(corner + extent, torch.full_like(corner, float(side)))
    inside_x = (cells[None, :] >= low[:, :1]) & (cells[None, :] <= high[:, :1])
    inside_y = (cells[None, :] >= low[:, 1:]) & (cells[None, :] <= high[:, 1:])
    box_masks = inside_y[:, :, None] & inside_x[:, None, :]
    boxes = torch.cat([low, high], dim=1) * scale
    centre = torch.rand((n_point, 2), generator=generator) * side
    radius = 2 + torch.rand(n_point, generator=generator) * (side / 3 - 2)
    dx = cells[None, None, :] - centre[:, None, None, :1].squeeze(-1)
    dy = cells[None, :, None] - centre[:, None, None, 1:].squeeze(-1)
    point_masks = dx**2 + dy**2 <= radius[:, None, None] ** 2
    return boxes, box_masks, centre * scale, point_masks


def warm_up_decoder(
    model: Sam,
    steps: int,
    prompts_per_step: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train the prompt encoder and mask decoder on :func:`localisation_targets`.

    Returns the mean box-prompt IoU of every step (it should climb towards 1).
    """
    from .losses import mask_iou

    generator = torch.Generator().manual_seed(seed)
    encoder, decoder = model.prompt_encoder, model.mask_decoder
    params = [*encoder.parameters(), *decoder.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    side = encoder.mask_input_size[0]
    scale = model.image_size / side
    channels = encoder.embed_dim
    height, width = encoder.image_embedding_size
    blank = torch.zeros((1, channels, height, width))
    pe = encoder.get_dense_pe()
    model.train()
    history: list[float] = []
    for step in tqdm(range(steps), disable=not progress, unit="step", desc="decoder warm-up"):
        warm = min(1.0, (step + 1) / 20)
        for group in optimizer.param_groups:
            group["lr"] = lr * warm * 0.5 * (1 + math.cos(math.pi * step / steps))
        boxes, box_masks, points, point_masks = localisation_targets(
            prompts_per_step, side, scale, generator
        )
        with bf16_autocast():
            sparse, dense = encoder(points=None, boxes=boxes, masks=None)
            box_logits, box_iou = decoder(blank, pe, sparse, dense, False)
            labels = torch.ones((len(points), 1), dtype=torch.long)
            sparse, dense = encoder(points=(points[:, None], labels), boxes=None, masks=None)
            point_logits, point_iou = decoder(blank, pe, sparse, dense, True)
        loss_box, _ = segmentation_loss(
            box_logits.float(), box_iou.float(), box_masks.float(), focal_share=0.0
        )
        loss_point, _ = segmentation_loss(
            point_logits.float(), point_iou.float(), point_masks.float(), focal_share=0.0
        )
        optimizer.zero_grad(set_to_none=True)
        (loss_box + loss_point).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        with torch.no_grad():
            history.append(float(mask_iou(box_logits[:, 0].float(), box_masks.float()).mean()))
    return history
