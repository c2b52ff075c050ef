"""load_model: registry names, checkpoints, downloads into the cache, clear errors."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

import segany
from segany import registry
from segany.errors import CheckpointError, DownloadError, InputError
from segany.models import build_sam
from segany.registry import ModelSpec, WeightsInfo
from segany.weights import save_state_dict_file, sha256_file
from tests.helpers import TINY


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    state = build_sam(TINY).state_dict()
    path = tmp_path / "served" / "tiny.safetensors"
    path.parent.mkdir()
    save_state_dict_file(state, path)
    return path, state


@pytest.fixture
def http_dir(tiny_checkpoint: tuple[Path, dict]) -> Iterator[tuple[str, list[str]]]:
    """Serve the checkpoint's folder on 127.0.0.1; yields (base URL, request log)."""
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            requests.append(self.path)

    handler = functools.partial(Handler, directory=str(tiny_checkpoint[0].parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tiny_spec(
    monkeypatch: pytest.MonkeyPatch, tiny_checkpoint: tuple[Path, dict], http_dir: tuple[str, list]
) -> ModelSpec:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    path, _ = tiny_checkpoint
    spec = ModelSpec(
        name="tiny_test",
        description="a tiny model served from a loopback server",
        config=TINY,
        weights=WeightsInfo(
            url=http_dir[0] + path.name,
            filename="tiny_test.safetensors",
            sha256=sha256_file(path),
            size=path.stat().st_size,
            license="Apache-2.0",
        ),
    )
    monkeypatch.setattr(registry, "_REGISTRY", {**registry._REGISTRY, spec.name: spec})
    return spec


def test_download_then_cache(tiny_spec, tiny_checkpoint, http_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SEGANY_CACHE", str(tmp_path / "cache"))
    model = segany.load_model("tiny_test", progress=False)
    assert not model.is_random and model.name == "tiny_test"
    for key, value in tiny_checkpoint[1].items():
        assert torch.equal(model.state_dict()[key], value), key
    assert (tmp_path / "cache" / "tiny_test.safetensors").is_file()
    served = len(http_dir[1])
    assert served == 1
    segany.load_model("tiny_test", progress=False)  # second time: from the cache
    assert len(http_dir[1]) == served


def test_download_bad_sha_leaves_cache_empty(tiny_spec, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SEGANY_CACHE", str(tmp_path / "cache"))
    bad = ModelSpec(
        name=tiny_spec.name,
        description="",
        config=TINY,
        weights=WeightsInfo(
            url=tiny_spec.weights.url,
            filename="tiny_test.safetensors",
            sha256="0" * 64,
            size=None,
            license="x",
        ),
    )
    monkeypatch.setitem(registry._REGISTRY, bad.name, bad)
    with pytest.raises(DownloadError, match="sha256"):
        segany.load_model("tiny_test", progress=False)
    assert list((tmp_path / "cache").glob("*")) == []


def test_random_weights_flagged() -> None:
    model = segany.load_model("mobile_sam", pretrained=False)
    assert model.is_random and model.name == "mobile_sam"
    assert sum(p.numel() for p in model.parameters()) == segany.get_spec("vit_t").num_params


def test_checkpoint_of_another_model(tmp_path: Path) -> None:
    path = tmp_path / "mobile.pth"
    torch.save(segany.load_model("mobile_sam", pretrained=False).state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        segany.load_model("sam_vit_b", checkpoint=path)
    message = str(info.value)
    assert "missing keys" in message and "unexpected keys" in message
    assert "looks like a 'mobile_sam' checkpoint" in message
    assert "\n" not in message


def test_unknown_architecture_names_closest(tmp_path: Path) -> None:
    state = build_sam(TINY).state_dict()
    path = tmp_path / "tiny.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="matches none of the registered models"):
        segany.load_model(checkpoint=path)
    # with the architecture given explicitly, a custom config's checkpoint loads
    model = build_sam(TINY)
    segany.loading.load_weights(model, state, "tiny", str(path))
    assert not model.is_random


def test_truncated_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "m.pth"
    torch.save(segany.load_model("mobile_sam", pretrained=False).state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        segany.load_model(checkpoint=path)


def test_unknown_name() -> None:
    with pytest.raises(InputError, match="unknown model 'nope'.*mobile_sam"):
        segany.load_model("nope")


def test_aliases_and_registry() -> None:
    assert segany.get_spec("vit_b") is segany.get_spec("sam_vit_b")
    names = [s.name for s in segany.list_models()]
    assert names[:4] == ["sam_vit_b", "sam_vit_l", "sam_vit_h", "mobile_sam"]
    assert segany.get_spec("sam_vit_h").num_params == 641_090_608
    for spec in segany.list_models()[:4]:  # the official models: published, pinned weights
        assert spec.weights is not None and len(spec.weights.sha256 or "") == 64
    with pytest.raises(ValueError, match="already registered"):
        registry.register_model(segany.get_spec("sam_vit_b"))
