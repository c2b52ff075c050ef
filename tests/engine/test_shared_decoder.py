"""Shared-image decoding equals the decoder's own forward (up to rounding), gradients too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import segany
from segany.engine import apply_mode, decode_shared, modes, predict_masks_shared
from segany.models import build_sam
from segany.registry import get_spec
from tests.helpers import TINY, randomize_state_dict


def _model(name: str | None) -> torch.nn.Module:
    model = build_sam(get_spec(name).config if name else TINY)
    model.load_state_dict(randomize_state_dict(model.state_dict(), seed=3))
    return model.eval()


def _prompts(model, batch: int, with_box: bool, with_mask: bool, seed: int):
    generator = torch.Generator().manual_seed(seed)
    size = model.image_size
    points = (
        torch.rand((batch, 2, 2), generator=generator) * size,
        torch.randint(0, 2, (batch, 2), generator=generator),
    )
    corner = torch.rand((batch, 2), generator=generator) * size / 2
    boxes = torch.cat([corner, corner + size / 3], dim=1) if with_box else None
    low = model.prompt_encoder.mask_input_size
    masks = torch.randn((batch, 1, *low), generator=generator) if with_mask else None
    return model.prompt_encoder(points=points, boxes=boxes, masks=masks)


@pytest.mark.parametrize("name", [None, "segany_shapes", "mobile_sam"])
@pytest.mark.parametrize(
    ("images", "per_image", "with_box", "with_mask"),
    [(1, 5, False, False), (1, 3, True, False), (3, 4, False, False), (2, 3, True, True),
     (1, 1, False, False), (4, 1, False, True)],
)  # fmt: skip
def test_equals_the_decoder(name, images, per_image, with_box, with_mask) -> None:
    model = _model(name)
    channels = model.prompt_encoder.embed_dim
    side = model.prompt_encoder.image_embedding_size[0]
    generator = torch.Generator().manual_seed(1)
    embeddings = torch.randn((images, channels, side, side), generator=generator)
    with torch.no_grad():
        sparse, dense = _prompts(model, images * per_image, with_box, with_mask, seed=images)
        pe = model.prompt_encoder.get_dense_pe()
        repeated = embeddings.repeat_interleave(per_image, dim=0)
        for multimask in (True, False):
            want_masks, want_iou = model.mask_decoder(repeated, pe, sparse, dense, multimask)
            got_masks, got_iou = decode_shared(
                model.mask_decoder, embeddings, pe, sparse, dense, multimask
            )
            assert got_masks.shape == want_masks.shape and got_iou.shape == want_iou.shape
            scale = float(want_masks.std())
            assert float((got_masks - want_masks).abs().max()) <= 1e-4 * scale
            assert float((got_iou - want_iou).abs().max()) <= 1e-5


def test_gradients_equal_the_decoder() -> None:
    model = _model("segany_shapes").train()
    side = model.prompt_encoder.image_embedding_size[0]
    base = torch.randn((2, 128, side, side), generator=torch.Generator().manual_seed(2))
    grads = []
    for shared in (False, True):
        model.zero_grad()
        embeddings = base.clone().requires_grad_(True)
        sparse, dense = _prompts(model, 6, with_box=False, with_mask=False, seed=5)
        pe = model.prompt_encoder.get_dense_pe()
        if shared:
            masks, iou = predict_masks_shared(model.mask_decoder, embeddings, pe, sparse, dense)
        else:
            masks, iou = model.mask_decoder.predict_masks(
                embeddings.repeat_interleave(3, dim=0), pe, sparse, dense
            )
        (masks.sigmoid().mean() + iou.square().mean()).backward()
        weight = model.mask_decoder.transformer.layers[1].cross_attn_image_to_token.q_proj.weight
        grads.append((embeddings.grad.clone(), weight.grad.clone()))
    for want, got in zip(grads[0], grads[1], strict=True):
        assert float((got - want).norm() / want.norm()) < 1e-4


def test_uneven_groups_are_refused() -> None:
    model = _model(None)
    side = model.prompt_encoder.image_embedding_size[0]
    sparse, dense = _prompts(model, 5, with_box=False, with_mask=False, seed=0)
    embeddings = torch.zeros((2, model.prompt_encoder.embed_dim, side, side))
    with pytest.raises(ValueError, match="split evenly"):
        decode_shared(model.mask_decoder, embeddings, model.prompt_encoder.get_dense_pe(),
                      sparse, dense, True)  # fmt: skip


def test_masks_only_above_the_iou_threshold_and_a_fresh_image_is_not_mixed_up() -> None:
    """decode_shared_above gives decode_shared's IoU for all and its logits for the kept.

    The per-image memo (the first block's image-side work) must follow the image: a second
    image, then the first again, give what a fresh computation gives.
    """
    from segany.engine.shared_decoder import decode_shared_above

    model = _model("mobile_sam")
    channels = model.prompt_encoder.embed_dim
    side = model.prompt_encoder.image_embedding_size[0]
    generator = torch.Generator().manual_seed(5)
    first, second = (torch.randn((1, channels, side, side), generator=generator) for _ in "ab")
    pe = model.prompt_encoder.get_dense_pe()
    with torch.inference_mode():
        sparse, dense = _prompts(model, 6, False, False, seed=7)
        for image in (first, second, first):
            repeated = image.expand(6, -1, -1, -1)
            want_masks, want_iou = model.mask_decoder(repeated, pe, sparse, dense, True)
            ranked = want_iou.flatten().sort().values  # a threshold between two values
            threshold = float(ranked[8] + ranked[9]) / 2
            kept, logits, iou = decode_shared_above(
                model.mask_decoder, image, pe, sparse, dense, True, threshold
            )
            assert torch.allclose(iou, want_iou, atol=1e-5)
            expected = torch.nonzero((want_iou > threshold).flatten()).flatten()
            assert torch.equal(kept, expected) and 0 < len(kept) < want_iou.numel()
            scale = float(want_masks.std())
            assert float((logits - want_masks.flatten(0, 1)[kept]).abs().max()) <= 1e-4 * scale
        kept, logits, _ = decode_shared_above(
            model.mask_decoder, first, pe, sparse, dense, True, float("inf")
        )
        assert len(kept) == 0 and logits.shape[0] == 0


def test_fast_mode_primes_the_first_click_at_set_image(monkeypatch) -> None:
    """In fast mode (fp32 here, as on a CPU without native bf16) ``set_image`` does the first
    block's image-side projections, so no click projects the image tokens again, and a
    single click equals the exact path's."""
    monkeypatch.setattr(modes, "native_bf16", lambda: False)
    monkeypatch.setattr(modes, "openvino_available", lambda: False)
    exact = _model("segany_shapes")
    fast = apply_mode(_model("segany_shapes"), "fast")
    block = fast.mask_decoder.transformer.layers[0]
    projections = [
        block.cross_attn_token_to_image.k_proj,
        block.cross_attn_token_to_image.v_proj,
        block.cross_attn_image_to_token.q_proj,
    ]
    image_rows = []  # rows of every call to the first block's image-side projections
    for projection in projections:
        projection.register_forward_hook(lambda m, i, o: image_rows.append(i[0].shape[-2]))
    image = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    predictors = [segany.Predictor(m) for m in (exact, fast)]
    for predictor in predictors:
        predictor.set_image(image)
    tokens = int(np.prod(fast.prompt_encoder.image_embedding_size))
    assert image_rows == [tokens] * 3  # primed once each, at set_image
    for point in ([[30.0, 40.0]], [[100.0, 20.0]]):
        want, got = (p.predict(points=point, labels=[1], return_logits=True) for p in predictors)
        scale = float(np.std(want.low_res_logits))
        assert np.abs(got.low_res_logits - want.low_res_logits).max() <= 1e-4 * scale
        assert np.abs(got.scores - want.scores).max() <= 1e-5
    assert image_rows == [tokens] * 3  # the clicks projected no image tokens
    predictors[1].set_image(image[::-1].copy())  # a new image: primed again
    assert image_rows == [tokens] * 6
