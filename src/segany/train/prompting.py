"""Simulating SAM's interactive prompts from ground-truth masks (training and evaluation).

All coordinates are in the model's input frame (the resized, padded image); masks are the
low-resolution targets (LxL) and ``scale`` is input pixels per low-res pixel.
"""

from __future__ import annotations

import torch


def random_points(masks: torch.Tensor, scale: float, generator: torch.Generator) -> torch.Tensor:
    """One point drawn uniformly inside each mask.

    Arguments:
      masks: PxLxL bool, none empty.

    Returns:
      (torch.Tensor): Px2 (x, y) in the input frame, jittered within the chosen cell.
    """
    flat = masks.flatten(1).float()
    index = torch.multinomial(flat, 1, generator=generator)[:, 0]
    return _cell_to_input(index, masks.shape[-1], scale, generator)


def noisy_boxes(
    boxes: torch.Tensor, noise: float, max_shift: float, limit: float, generator: torch.Generator
) -> torch.Tensor:
    """Jitter each box coordinate by N(0, noise x side), at most ``max_shift`` pixels.

    Arguments:
      boxes: Px4 XYXY in the input frame. limit: the frame's side (clamp bound).
    """
    sides = torch.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, dim=1).clamp(
        min=1.0
    )
    shift = torch.randn(boxes.shape, generator=generator) * noise * sides
    out = boxes + shift.clamp(-max_shift, max_shift)
    x0 = torch.minimum(out[:, 0], out[:, 2])
    x1 = torch.maximum(out[:, 0], out[:, 2])
    y0 = torch.minimum(out[:, 1], out[:, 3])
    y1 = torch.maximum(out[:, 1], out[:, 3])
    return torch.stack([x0, y0, x1, y1], dim=1).clamp(0, limit)


def corrective_points(
    pred: torch.Tensor, targets: torch.Tensor, scale: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A click in each prompt's error region, as SAM's simulated annotator does.

    Arguments:
      pred: PxLxL bool current masks. targets: PxLxL bool ground truth.

    Returns:
      points (torch.Tensor): Px2 (x, y) in the input frame.
      labels (torch.Tensor): P int64, 1 where the click is on a missed object pixel (false
        negative), 0 on a wrongly included pixel (false positive). Where the mask is
        already perfect, a positive click inside the object.
    """
    error = pred ^ targets
    perfect = ~error.flatten(1).any(1)
    region = torch.where(perfect[:, None, None], targets, error)
    flat = region.flatten(1).float()
    index = torch.multinomial(flat, 1, generator=generator)[:, 0]
    labels = targets.flatten(1).gather(1, index[:, None])[:, 0].long()
    return _cell_to_input(index, targets.shape[-1], scale, generator), labels


def _cell_to_input(
    index: torch.Tensor, side: int, scale: float, generator: torch.Generator
) -> torch.Tensor:
    """Flat low-res cell indices -> (x, y) input-frame points, uniform within the cell."""
    jitter = torch.rand((len(index), 2), generator=generator)
    x = (index % side).float() + jitter[:, 0]
    y = (index // side).float() + jitter[:, 1]
    return torch.stack([x, y], dim=1) * scale
