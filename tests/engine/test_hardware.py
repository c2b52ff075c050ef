"""bf16 only where the CPU computes it natively: detection, training and the fast mode."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import segany.engine.hardware as hardware
import segany.engine.modes as modes
import segany.train.loop as loop
from segany.models import build_sam
from segany.train import train
from tests.helpers import TINY
from tests.train.test_train import FAST


@pytest.fixture(autouse=True)
def _fresh_answer() -> Iterator[None]:
    hardware.native_bf16.cache_clear()
    yield
    hardware.native_bf16.cache_clear()


def test_cpu_flags_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 avx512_bf16\n\n")
    assert hardware.cpu_flags(info) == {"fpu", "avx2", "avx512_bf16"}
    assert hardware.cpu_flags(tmp_path / "missing") == set()


@pytest.mark.parametrize(
    ("onednn", "flags", "expected"),
    [
        (True, set(), True),
        (False, {"avx512_bf16"}, False),  # oneDNN's answer wins
        (None, {"avx2", "amx_bf16"}, True),
        (None, {"avx2", "avx512f"}, False),
    ],
)
def test_native_bf16_asks_onednn_then_the_flags(
    monkeypatch: pytest.MonkeyPatch, onednn: bool | None, flags: set[str], expected: bool
) -> None:
    monkeypatch.setattr(hardware, "onednn_bf16", lambda: onednn)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
    assert hardware.native_bf16() is expected


def test_native_bf16_answers_on_this_machine() -> None:
    assert hardware.native_bf16() in (True, False)
    assert hardware.onednn_bf16() in (True, False, None)


@contextmanager
def _recording_autocast(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[torch.dtype]]:
    seen: list[torch.dtype] = []
    real = torch.autocast

    def recording(
        device_type: str, dtype: torch.dtype | None = None, enabled: bool = True, **kwargs: object
    ):
        if dtype is not None and enabled:  # (the loss turns autocast off by itself: no dtype)
            seen.append(dtype)
        return real(device_type, dtype=dtype, enabled=enabled, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch, "autocast", recording)
    yield seen


@pytest.mark.parametrize("native", [True, False])
def test_training_autocasts_to_bf16_only_where_native(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    monkeypatch.setattr(hardware, "native_bf16", lambda: native)
    monkeypatch.setattr(loop, "native_bf16", lambda: native)
    config = replace(FAST, steps=2, checkpoint_every=2, log_every=1, bf16=True)
    torch.manual_seed(0)
    with _recording_autocast(monkeypatch) as seen:
        if native:
            train(config, tmp_path, progress=False, model=build_sam(TINY))
        else:
            with pytest.warns(UserWarning, match="no native bf16.*training in fp32"):
                train(config, tmp_path, progress=False, model=build_sam(TINY))
    assert seen == ([torch.bfloat16] * 2 if native else [])
    assert (tmp_path / loop.FINAL).is_file()


def test_fp32_training_never_autocasts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "native_bf16", lambda: True)
    config = replace(FAST, steps=1, checkpoint_every=1, log_every=1, bf16=False)
    torch.manual_seed(0)
    with _recording_autocast(monkeypatch) as seen:
        train(config, tmp_path, progress=False, model=build_sam(TINY))
    assert seen == []


@pytest.mark.parametrize("native", [True, False])
def test_fast_mode_computes_in_bf16_only_where_it_is_native(
    monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder, native: bool
) -> None:
    monkeypatch.setattr(modes, "native_bf16", lambda: native)
    monkeypatch.setattr(modes, "openvino_available", lambda: False)
    monkeypatch.setattr(modes, "BF16_DECODER_MIN_DIM", 1)  # the tiny decoder counts as wide
    torch.manual_seed(0)
    model = build_sam(TINY)
    modes.apply_mode(model, "fast")
    wanted = torch.bfloat16 if native else torch.float32
    assert modes.compute_dtype("fast") == wanted
    assert next(model.image_encoder.parameters()).dtype == wanted
    assert next(model.mask_decoder.parameters()).dtype == wanted
    assert modes.mode_of(model) == "fast"
    assert modes.compute_dtype("exact") == torch.float32
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
