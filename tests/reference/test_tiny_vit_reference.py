"""segany's TinyViT equals the official MobileSAM TinyViT on the same random weights.

Both sides load one state dict in which every floating tensor (BatchNorm statistics,
attention bias tables and the unused classification head included) is randomised.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import nn

from segany.models.tiny_vit import Attention, TinyViT, TinyViTConfig
from tests.helpers import randomize_state_dict
from tests.reference.official import official_tiny_vit

with warnings.catch_warnings():  # mobile_sam imports deprecated timm paths
    warnings.simplefilter("ignore")
    import mobile_sam.modeling.tiny_vit_sam as official  # type: ignore[import-untyped]

TOL = 1e-4  # max |Δ| relative to the official output's std

SMALL = TinyViTConfig(
    img_size=256,
    embed_dims=(16, 32, 40, 80),
    depths=(1, 1, 2, 1),
    num_heads=(1, 2, 5, 4),
    window_sizes=(7, 7, 14, 7),
    out_chans=64,
    num_classes=10,
)


def _shapes(model: nn.Module) -> dict[str, tuple[Any, ...]]:
    return {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}


def test_state_dict_layout_matches_official() -> None:
    ref, ours = official_tiny_vit(TinyViTConfig()), TinyViT(TinyViTConfig())
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert _shapes(ours) == _shapes(ref)
    assert not any("attention_bias_idxs" in key for key in ours.state_dict())
    ref_idxs = {k: v for k, v in ref.named_buffers() if k.endswith("attention_bias_idxs")}
    our_idxs = {k: v for k, v in ours.named_buffers() if k.endswith("attention_bias_idxs")}
    assert ref_idxs.keys() == our_idxs.keys() and len(ref_idxs) == 10
    for key, idxs in ref_idxs.items():
        assert torch.equal(our_idxs[key], idxs), key


def test_matches_official_at_1024() -> None:
    config = TinyViTConfig()
    ref = official_tiny_vit(config)
    state = randomize_state_dict(ref.state_dict(), seed=0)
    ref.load_state_dict(state, strict=True)
    ref.eval()  # after loading: the official model caches its attention biases in eval()
    ours = TinyViT(config)
    ours.load_state_dict(state, strict=True)
    ours.eval()
    image = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = ref(image)
        actual = ours(image)
    assert actual.shape == expected.shape == (1, 256, 64, 64)
    assert ours.img_size == 1024 and ours.embedding_size == 64
    diff = (actual - expected).abs().max().item()
    assert diff <= TOL * expected.std().item(), f"max |Δ| {diff:.3g}"


@pytest.mark.parametrize("training", [False, True])
def test_attention_matches_official(training: bool) -> None:
    ref = official.Attention(160, 32, num_heads=5, attn_ratio=1, resolution=(14, 14))
    ours = Attention(160, num_heads=5, window_size=14)
    state = randomize_state_dict(ref.state_dict(), seed=3)
    ref.load_state_dict(state, strict=True)
    ours.load_state_dict(state, strict=True)
    ref.train(training)
    ours.train(training)
    tokens = torch.randn(6, 196, 160, generator=torch.Generator().manual_seed(4))
    expected, actual = ref(tokens), ours(tokens)
    assert (actual - expected).abs().max().item() <= TOL * expected.std().item()
    if training:  # the relative bias table must receive the same gradient
        weights = torch.randn(expected.shape, generator=torch.Generator().manual_seed(5))
        (expected * weights).sum().backward()
        (actual * weights).sum().backward()
        ref_grad, our_grad = ref.attention_biases.grad, ours.attention_biases.grad
        assert ref_grad is not None and our_grad is not None
        assert (our_grad - ref_grad).abs().max().item() <= TOL * ref_grad.std().item()


def test_no_stale_bias_after_load_in_eval_mode() -> None:
    model = TinyViT(SMALL).eval()  # eval() first, load afterwards
    state = randomize_state_dict(model.state_dict(), seed=5)
    model.load_state_dict(state, strict=True)
    fresh = TinyViT(SMALL)
    fresh.load_state_dict(state, strict=True)
    fresh.eval()
    image = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        torch.testing.assert_close(model(image), fresh(image), rtol=0, atol=0)


@pytest.mark.parametrize("config", [SMALL, TinyViTConfig(img_size=512)], ids=["small", "512"])
def test_smaller_img_size(config: TinyViTConfig) -> None:
    model = TinyViT(config)
    model.load_state_dict(randomize_state_dict(model.state_dict(), seed=7))
    model.eval()
    grid = config.img_size // 16
    assert model.img_size == config.img_size and model.embedding_size == grid
    image = torch.randn(2, 3, config.img_size, config.img_size)
    with torch.inference_mode():
        out = model(image)
    assert out.shape == (2, config.out_chans, grid, grid)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "missing",
    [
        "layers.2.blocks.3.attn.attention_biases",
        "layers.0.blocks.1.conv2.bn.running_var",
        "head.weight",
    ],
)
def test_strict_load_rejects_missing_keys(missing: str) -> None:
    state = official_tiny_vit(TinyViTConfig()).state_dict()
    del state[missing]
    with pytest.raises(RuntimeError, match="Missing key"):
        TinyViT(TinyViTConfig()).load_state_dict(state, strict=True)


def test_rejects_bad_config_and_input() -> None:
    with pytest.raises(ValueError):
        TinyViTConfig(img_size=1000)
    with pytest.raises(ValueError):
        TinyViTConfig(depths=(2, 2, 6))
    with pytest.raises(ValueError):
        TinyViT(SMALL)(torch.zeros(1, 3, 512, 512))
