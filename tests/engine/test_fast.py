"""The fast mode (bf16, fused attention) stays close to the exact path."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import segany
from segany.engine import apply_mode, mode_of, modes
from segany.engine.openvino_backend import OpenVinoEncoder
from segany.errors import InputError
from segany.models import build_sam
from segany.registry import get_spec
from tests.helpers import randomize_state_dict
from tests.reference.official import SMALL_VIT


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch) -> None:
    """Converted OpenVINO models go to a temporary cache, not the user's."""
    monkeypatch.setenv("SEGANY_CACHE", str(tmp_path / "cache"))


def _random(config) -> segany.models.Sam:
    """Every tensor random (the equivalence tests' weights)."""
    model = build_sam(config)
    model.load_state_dict(randomize_state_dict(model.state_dict(), seed=21))
    return model.eval()


def _official_init(config) -> segany.models.Sam:
    """The official code's random initialisation, with position tables not zero.

    The fast mode is judged on these, as the issue asks ("random-weight official models"):
    the equivalence tests' weights draw relative-position tables from N(0, 1), which
    makes every attention row nearly one-hot, a regime no trained model is in; there
    bf16 rounding flips attention winners (ViT-B cosine 0.98, measured).
    """
    torch.manual_seed(5)
    model = build_sam(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "rel_pos" in name or "pos_embed" in name:
                param.normal_(0, 0.02)
    return model.eval()


def _image(height: int = 480, width: int = 640) -> np.ndarray:
    from segany.data.scenes import SceneConfig, generate_scene

    return generate_scene(6, SceneConfig(size=(height, width))).image


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


def test_fused_vit_attention_equals_exact_in_fp32() -> None:
    model = _random(SMALL_VIT)
    image = torch.randn((1, 3, 256, 256), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model.image_encoder(image)
        for module in model.image_encoder.modules():
            if hasattr(module, "fused"):
                module.fused = True
        got = model.image_encoder(image)
    assert float((got - want).abs().max()) <= 1e-4 * float(want.std())


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["openvino", "torch"])
@pytest.mark.parametrize(
    "name", ["mobile_sam", pytest.param("sam_vit_b", marks=pytest.mark.full)]
)  # ViT-B differs from the small ViT in config only: `make test-all`
def test_fast_embeddings_and_masks_stay_close(name: str, backend: str, monkeypatch) -> None:
    # bf16 on every CPU (where it is emulated the fast mode itself would choose fp32,
    # tests/engine/test_hardware.py): the quality bar is bf16's
    monkeypatch.setattr(modes, "native_bf16", lambda: True)
    if backend == "torch":  # as on a machine without openvino
        monkeypatch.setattr(modes, "openvino_available", lambda: False)
    exact = _official_init(get_spec(name).config)
    fast = apply_mode(copy.deepcopy(exact), "fast")
    assert mode_of(fast) == "fast" and mode_of(exact) == "exact"
    if backend == "openvino":
        assert isinstance(fast.fast_encoder, OpenVinoEncoder)
    else:
        assert fast.fast_encoder is None
        assert next(fast.image_encoder.parameters()).dtype == torch.bfloat16
    image = _image()
    predictors = [segany.Predictor(m) for m in (exact, fast)]
    for predictor in predictors:
        predictor.set_image(image)
    want, got = (p.get_image_embedding() for p in predictors)
    assert got.dtype == torch.float32
    cosine = _cosine(got, want)
    print(f"\n{name} ({backend}): embedding cosine similarity fast vs exact {cosine:.6f}")
    assert cosine >= 0.999
    prompts = [
        {"points": [[320, 240]], "labels": [1]},
        {"box": [[100, 80, 400, 300], [300, 200, 600, 460]]},
    ]
    for prompt in prompts:
        reference, fast_out = (p.predict(**prompt, return_logits=True) for p in predictors)
        assert _cosine(torch.from_numpy(fast_out.low_res_logits),
                       torch.from_numpy(reference.low_res_logits)) >= 0.995  # fmt: skip
        assert np.abs(fast_out.scores - reference.scores).max() <= 0.02


def test_load_model_modes(monkeypatch) -> None:
    monkeypatch.setattr(modes, "openvino_available", lambda: False)
    fast = segany.load_model("segany_shapes", pretrained=False, mode="fast")
    assert mode_of(fast) == "fast"
    attention = [m for m in fast.image_encoder.modules() if hasattr(m, "fused")]
    assert attention and all(m.fused for m in attention)
    exact = apply_mode(fast, "exact")
    assert next(exact.mask_decoder.parameters()).dtype == torch.float32
    assert not any(m.fused for m in attention)
    with pytest.raises(InputError, match="mode must be one of exact, fast"):
        segany.load_model("segany_shapes", pretrained=False, mode="turbo")


def test_cached_casts_and_encodings_follow_their_sources() -> None:
    from segany.engine.modes import _cast, dense_pe

    model = build_sam(SMALL_VIT)
    first = dense_pe(model, torch.bfloat16)
    assert dense_pe(model, torch.bfloat16) is first
    with torch.no_grad():
        model.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix.mul_(2.0)
    again = dense_pe(model, torch.bfloat16)
    assert again is not first and not torch.equal(again, first)
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    assert torch.equal(_cast(a, torch.bfloat16), a.to(torch.bfloat16))
    assert _cast(a, torch.bfloat16) is _cast(a, torch.bfloat16)
    assert torch.equal(_cast(b, torch.bfloat16), b.to(torch.bfloat16))
    a.add_(1.0)  # changed in place: cast again
    assert torch.equal(_cast(a, torch.bfloat16), a.to(torch.bfloat16))


def test_fast_mode_runs_only_wide_decoders_in_bf16(monkeypatch) -> None:
    """SAM's 256-wide decoder in bf16; a narrower one (the bundled model's) stays fp32."""
    monkeypatch.setattr(modes, "openvino_available", lambda: False)
    monkeypatch.setattr(modes, "native_bf16", lambda: True)
    for name, want in (("mobile_sam", torch.bfloat16), ("segany_shapes", torch.float32)):
        fast = segany.load_model(name, pretrained=False, mode="fast")
        assert next(fast.mask_decoder.parameters()).dtype == want, name
        assert next(fast.image_encoder.parameters()).dtype == torch.bfloat16, name
        apply_mode(fast, "exact")
        assert next(fast.mask_decoder.parameters()).dtype == torch.float32, name
