"""Tests of segany.weights: cache dir, resumable verified downloads, safe checkpoint I/O.

Every download test talks to its own loopback HTTP server (127.0.0.1, ephemeral port) that
supports ``Range`` requests and can be told to misbehave: cut a transfer short, ignore ranges,
or stall. No test touches any other network.
"""

from __future__ import annotations

import hashlib
import pickle
import random
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch

from segany.errors import CheckpointError, DownloadError, InputError
from segany.weights import (
    cache_dir,
    download,
    load_state_dict_file,
    save_state_dict_file,
    sha256_file,
)

PAYLOAD_SIZE = 3 * 1024 * 1024 + 12345  # ~3 MB, deliberately not a multiple of the chunk size
FILE_PATH = "/weights/model.pth"


# --------------------------------------------------------------------------------------------
# Loopback HTTP server
# --------------------------------------------------------------------------------------------


@dataclass
class RequestLog:
    """What the server saw and did for one request."""

    path: str
    range_header: str | None
    status: int = 0
    body_bytes_sent: int = 0


@dataclass
class ServerState:
    """Files served and misbehaviour switches, shared with the handler threads."""

    files: dict[str, bytes] = field(default_factory=dict)
    ignore_range: bool = False
    truncate_after: int | None = None  # send at most this many body bytes, then hang up
    stall: bool = False  # send headers, then wait for `release` before sending the body
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[RequestLog] = field(default_factory=list)


class LoopbackServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying a :class:`ServerState`; quiet about client hang-ups."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RangeHandler)
        self.state = ServerState()

    def url(self, path: str = FILE_PATH) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out or hang up are part of the tests: do not print tracebacks."""


class _RangeHandler(BaseHTTPRequestHandler):
    server: LoopbackServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        state = self.server.state
        range_header = self.headers.get("Range")
        log = RequestLog(self.path, range_header)
        state.requests.append(log)

        data = state.files.get(self.path)
        if data is None:
            log.status = 404
            self.send_error(404, "Not Found")
            return

        start, status = 0, 200
        if range_header is not None and not state.ignore_range:
            match = re.fullmatch(r"bytes=(\d+)-", range_header.strip())
            assert match is not None, f"unexpected Range header {range_header!r}"
            start = int(match.group(1))
            if start >= len(data):
                log.status = 416
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206

        body = data[start:]
        log.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))  # always the full length
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if state.stall:
            self.wfile.flush()
            state.release.wait(timeout=10)
            return
        if state.truncate_after is not None:
            body = body[: state.truncate_after]
            self.close_connection = True
        # Recorded before writing: the client may finish reading (and the test check the
        # log) before this thread runs again after the write.
        log.body_bytes_sent = len(body)
        self.wfile.write(body)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure urllib talks to 127.0.0.1 directly even if the environment has a proxy."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def payload() -> bytes:
    return random.Random(1234).randbytes(PAYLOAD_SIZE)


@pytest.fixture(scope="module")
def payload_sha(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


@pytest.fixture
def server(payload: bytes) -> Iterator[LoopbackServer]:
    srv = LoopbackServer()
    srv.state.files[FILE_PATH] = payload
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield srv
    finally:
        srv.state.release.set()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("SEGANY_CACHE", str(directory))
    return directory


def _part(dest: Path) -> Path:
    return dest.with_suffix(dest.suffix + ".part")


# --------------------------------------------------------------------------------------------
# cache_dir and sha256_file
# --------------------------------------------------------------------------------------------


def test_cache_dir_prefers_segany_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEGANY_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "mine"


def test_cache_dir_uses_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SEGANY_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "segany"


def test_cache_dir_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SEGANY_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "segany"


def test_sha256_file(tmp_path: Path, payload: bytes, payload_sha: str) -> None:
    path = tmp_path / "blob"
    path.write_bytes(payload)
    assert sha256_file(path) == payload_sha


# --------------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------------


def test_download_success(
    server: LoopbackServer,
    cache: Path,
    payload: bytes,
    payload_sha: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dest = cache_dir() / "sam_vit_b.pth"
    result = download(server.url(), dest, sha256=payload_sha.upper(), size=len(payload))
    assert result == dest
    assert dest.parent == cache
    assert dest.read_bytes() == payload
    assert not _part(dest).exists()
    assert [r.range_header for r in server.state.requests] == [None]
    assert "sam_vit_b.pth" in capsys.readouterr().err  # the tqdm bar

    # Already present and verified: no second request.
    download(server.url(), dest, sha256=payload_sha, size=len(payload), progress=False)
    assert len(server.state.requests) == 1


def test_download_wrong_sha256_leaves_nothing(
    server: LoopbackServer, cache: Path, payload_sha: str
) -> None:
    dest = cache / "model.pth"
    wrong = "0" * 64
    with pytest.raises(DownloadError) as info:
        download(server.url(), dest, sha256=wrong, progress=False)
    assert wrong in str(info.value) and payload_sha in str(info.value)
    assert not dest.exists()
    assert not _part(dest).exists()


def test_download_too_large_is_deleted(server: LoopbackServer, cache: Path, payload: bytes) -> None:
    dest = cache / "model.pth"
    with pytest.raises(DownloadError, match="wrong size"):
        download(server.url(), dest, sha256=None, size=len(payload) - 1, progress=False)
    assert not dest.exists()
    assert not _part(dest).exists()


def test_download_interrupted_then_resumed(
    server: LoopbackServer, cache: Path, payload: bytes, payload_sha: str
) -> None:
    dest = cache / "model.pth"
    cut = 1_000_003
    server.state.truncate_after = cut
    with pytest.raises(DownloadError, match="rerun will resume"):
        download(server.url(), dest, sha256=payload_sha, progress=False)
    assert not dest.exists()
    assert _part(dest).read_bytes() == payload[:cut]

    server.state.truncate_after = None
    download(server.url(), dest, sha256=payload_sha, size=len(payload), progress=False)
    assert dest.read_bytes() == payload
    assert not _part(dest).exists()

    resumed = server.state.requests[-1]
    assert resumed.range_header == f"bytes={cut}-"
    assert resumed.status == 206
    assert resumed.body_bytes_sent == len(payload) - cut


def test_download_server_ignoring_range_restarts(
    server: LoopbackServer, cache: Path, payload: bytes, payload_sha: str
) -> None:
    dest = cache / "model.pth"
    dest.parent.mkdir(parents=True)
    _part(dest).write_bytes(b"\xff" * 5000)  # stale bytes that must not survive
    server.state.ignore_range = True
    download(server.url(), dest, sha256=payload_sha, progress=False)
    assert dest.read_bytes() == payload
    (request,) = server.state.requests
    assert request.range_header == "bytes=5000-"
    assert request.status == 200
    assert request.body_bytes_sent == len(payload)


def test_download_complete_part_gets_416_and_verifies(
    server: LoopbackServer, cache: Path, payload: bytes, payload_sha: str
) -> None:
    dest = cache / "model.pth"
    dest.parent.mkdir(parents=True)
    _part(dest).write_bytes(payload)
    download(server.url(), dest, sha256=payload_sha, progress=False)
    assert dest.read_bytes() == payload
    assert [(r.range_header, r.status) for r in server.state.requests] == [
        (f"bytes={len(payload)}-", 416)
    ]


def test_download_corrupt_part_gets_416_and_fails(
    server: LoopbackServer, cache: Path, payload: bytes, payload_sha: str
) -> None:
    dest = cache / "model.pth"
    dest.parent.mkdir(parents=True)
    _part(dest).write_bytes(bytes(len(payload)))  # right length, wrong content
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(server.url(), dest, sha256=payload_sha, progress=False)
    assert not dest.exists()
    assert not _part(dest).exists()


def test_download_404(server: LoopbackServer, cache: Path) -> None:
    dest = cache / "missing.pth"
    with pytest.raises(DownloadError, match="404"):
        download(server.url("/nope.pth"), dest, sha256=None, progress=False)
    assert not dest.exists()


def test_download_connection_refused(cache: Path) -> None:
    with socket.socket() as sock:  # find a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError, match="cannot download"):
        download(f"http://127.0.0.1:{port}/x.pth", cache / "x.pth", sha256=None, progress=False)


def test_download_timeout_keeps_part(server: LoopbackServer, cache: Path) -> None:
    dest = cache / "model.pth"
    server.state.stall = True
    with pytest.raises(DownloadError, match="timed out"):
        download(server.url(), dest, sha256=None, progress=False, timeout=0.3)
    assert not dest.exists()


def test_download_file_url(tmp_path: Path, cache: Path, payload: bytes, payload_sha: str) -> None:
    mirror = tmp_path / "mirror" / "model.pth"
    mirror.parent.mkdir()
    mirror.write_bytes(payload)
    dest = cache / "model.pth"
    dest.parent.mkdir(parents=True)
    _part(dest).write_bytes(b"stale")  # file:// cannot resume: must restart cleanly
    download(mirror.as_uri(), dest, sha256=payload_sha, size=len(payload), progress=False)
    assert dest.read_bytes() == payload
    assert not _part(dest).exists()


def test_download_missing_file_url(tmp_path: Path, cache: Path) -> None:
    with pytest.raises(DownloadError):
        download((tmp_path / "absent.pth").as_uri(), cache / "a.pth", sha256=None, progress=False)


def test_download_rejects_bad_sha256(cache: Path) -> None:
    with pytest.raises(InputError):
        download("http://127.0.0.1:9/x", cache / "x", sha256="abc", progress=False)


# --------------------------------------------------------------------------------------------
# load_state_dict_file / save_state_dict_file
# --------------------------------------------------------------------------------------------


def _state_dict() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(8, 4, generator=gen)
    big = torch.arange(100, dtype=torch.float32)
    return {
        "encoder.weight": weight,
        "decoder.weight": weight,  # tied: shares storage
        "encoder.weight_t": weight.t(),  # non-contiguous view of the same storage
        "slice": big[10:20],  # view into a larger storage
        "mask": torch.tensor([True, False, True]),
        "half": torch.randn(3, generator=gen).to(torch.float16),
        "index": torch.tensor([1, 2, 3], dtype=torch.int64),
    }


def _assert_same(loaded: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert loaded.keys() == expected.keys()
    for key, tensor in expected.items():
        assert loaded[key].dtype == tensor.dtype, key
        assert torch.equal(loaded[key], tensor), key


@pytest.mark.parametrize("name", ["model.pth", "model.pt", "model.safetensors"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    state_dict = _state_dict()
    path = tmp_path / "out" / name
    assert save_state_dict_file(state_dict, path) == path
    _assert_same(load_state_dict_file(path), state_dict)
    _assert_same(load_state_dict_file(str(path)), state_dict)
    assert sorted(p.name for p in path.parent.iterdir()) == [name]  # no temp files left


def test_save_overwrites_atomically(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_state_dict_file({"a": torch.zeros(2)}, path)
    save_state_dict_file({"b": torch.ones(3)}, path)
    _assert_same(load_state_dict_file(path), {"b": torch.ones(3)})


def test_save_rejects_non_tensors(tmp_path: Path) -> None:
    not_tensors: dict[str, Any] = {"a": 1}
    with pytest.raises(InputError):
        save_state_dict_file(not_tensors, tmp_path / "x.pth")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("key", ["model", "state_dict"])
def test_nested_checkpoint_is_unwrapped(tmp_path: Path, key: str) -> None:
    state_dict = {"w": torch.randn(3, 3), "b": torch.zeros(3)}
    path = tmp_path / "ckpt.pth"
    torch.save({key: state_dict, "epoch": 7, "note": "trained"}, path)
    _assert_same(load_state_dict_file(path), state_dict)


def test_ambiguous_nested_checkpoint(tmp_path: Path) -> None:
    state_dict = {"w": torch.randn(3, 3)}
    path = tmp_path / "ckpt.pth"
    torch.save({"model": state_dict, "ema": state_dict}, path)
    with pytest.raises(CheckpointError, match="several keys"):
        load_state_dict_file(path)


@pytest.mark.parametrize("name", ["model.pth", "model.safetensors"])
def test_truncated_checkpoint(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    save_state_dict_file({"w": torch.randn(64, 64), "b": torch.randn(64)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_state_dict_file(path)


@pytest.mark.parametrize("name", ["model.pth", "model.safetensors"])
@pytest.mark.parametrize("content", [b"", b"this is not a checkpoint\nat all\n"])
def test_not_a_checkpoint(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="truncated or not a PyTorch/safetensors"):
        load_state_dict_file(path)


class _RunsCode:
    """Unpickling this runs code that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (exec, (f"import pathlib; pathlib.Path({str(self.marker)!r}).touch()",))


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    # Control: the payload really does run code when unpickled without restrictions.
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(_RunsCode(control)))
    assert control.exists()

    marker = tmp_path / "marker"
    for name, obj in [
        ("bare.pth", _RunsCode(marker)),
        ("nested.pth", {"model": {"w": torch.zeros(1), "evil": _RunsCode(marker)}}),
    ]:
        path = tmp_path / name
        torch.save(obj, path)
        with pytest.raises(CheckpointError, match="refused for safety"):
            load_state_dict_file(path)
        assert not marker.exists()


def test_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        load_state_dict_file(path)

    torch.save({"w": torch.zeros(2), "step": 3}, path)
    with pytest.raises(CheckpointError, match="'step'"):
        load_state_dict_file(path)


def test_missing_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "nope.pth"
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_state_dict_file(path)


def test_safetensors_loaded_on_cpu(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    safetensors.torch.save_file({"w": torch.ones(2, 2)}, str(path))
    loaded = load_state_dict_file(path)
    assert loaded["w"].device.type == "cpu"
