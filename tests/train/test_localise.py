"""The decoder warm-up: aligned attention and the geometric task it learns."""

from __future__ import annotations

import torch

from segany.models import build_sam
from segany.train.localise import align_attention, localisation_targets, warm_up_decoder
from tests.helpers import TINY


def test_targets_are_the_prompts_geometry() -> None:
    generator = torch.Generator().manual_seed(0)
    boxes, box_masks, points, point_masks = localisation_targets(10, 16, 4.0, generator)
    assert boxes.shape == (5, 4) and box_masks.shape == (5, 16, 16)
    assert points.shape == (5, 2) and point_masks.shape == (5, 16, 16)
    for box, mask in zip(boxes, box_masks, strict=True):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert xs.min() + 0.5 >= box[0] / 4 and xs.max() + 0.5 <= box[2] / 4
        assert mask.sum() == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1), "a filled box"
    for point, mask in zip(points, point_masks, strict=True):
        x, y = (point / 4).long().clamp(max=15)
        assert mask[y, x], "each disk holds its point"


def test_aligned_attention_is_a_positive_kernel() -> None:
    torch.manual_seed(0)
    model = build_sam(TINY)
    align_attention(model, gain=2.0)
    layer = model.mask_decoder.transformer.layers[0].cross_attn_image_to_token
    assert torch.equal(layer.q_proj.weight, layer.k_proj.weight)
    pe = model.prompt_encoder.get_dense_pe().flatten(2)[0].T  # positions x C
    q = pe @ layer.q_proj.weight.T
    k = pe @ layer.k_proj.weight.T
    scores = q @ k.T
    assert bool((scores.diagonal() >= scores.max(dim=1).values - 1e-4).float().mean() > 0.9)


def test_warm_up_learns_to_fill_boxes() -> None:
    torch.manual_seed(0)
    model = build_sam(TINY)
    align_attention(model)
    history = warm_up_decoder(model, steps=200, prompts_per_step=32, lr=3e-3, progress=False)
    assert len(history) == 200
    start, end = sum(history[:10]) / 10, sum(history[-10:]) / 10
    assert end > start + 0.15, (start, end)
