"""``segany serve``, ``segany user`` and ``segany project``: the server's command line.

Commands run in-process (``main([...])`` returns the exit status); one test starts a real
server in a subprocess and talks to it over HTTP.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

import segany.server
from segany.cli.main import main
from segany.data.coco import coco_document
from segany.data.dataset import Dataset, DatasetImage, annotation_from_mask
from segany.server.app import create_app
from segany.server.auth import user_for_token
from segany.server.config import ServerConfig
from segany.server.database import open_database
from tests.server.conftest import png_bytes

INSTALL_HINT = "pip install 'segany[server]'"


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """``segany ARGV...`` in-process: exit status, stdout and stderr."""
    capsys.readouterr()
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def error_line(err: str) -> str:
    """The one error line of ``err`` (asserting there is exactly one line)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("segany: error: "), err
    return lines[0]


def token_user(data: Path, token: str) -> str | None:
    db = open_database(ServerConfig(data_dir=data).database_url)
    try:
        with db.read() as session:
            found = user_for_token(session, token)
            return None if found is None else found[0].name
    finally:
        db.close()


def add_user(capsys: pytest.CaptureFixture[str], data: Path, name: str) -> str:
    status, out, err = run(capsys, "user", "add", name, "--data", data)
    assert status == 0, err
    return out.strip()


# ---------------------------------------------------------------- no server extra


def test_commands_need_the_server_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(segany.server, "missing_dependency", lambda: "fastapi")
    data = tmp_path / "data"
    for argv in (["serve", "--data", data], ["user", "add", "ann", "--data", data],
                 ["project", "list", "--data", data]):  # fmt: skip
        status, out, err = run(capsys, *argv)
        assert status == 2, (argv, out, err)
        line = error_line(err)
        assert INSTALL_HINT in line and "fastapi" in line, line
    assert not (data / "segany.db").exists()


# ------------------------------------------------------------------------ users


def test_user_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    token = add_user(capsys, data, "ann")
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,}", token), token
    assert (data / "segany.db").is_file()
    assert token_user(data, token) == "ann"

    status, out, err = run(capsys, "user", "token", "ann", "--data", data, "--expires-days", 1)
    assert status == 0, err
    second = out.strip()
    assert second != token and token_user(data, second) == "ann"

    status, out, err = run(capsys, "user", "revoke", "ann", "--data", data, "--token", second)
    assert status == 0 and "revoked 1 token" in err, err
    assert token_user(data, second) is None and token_user(data, token) == "ann"
    status, _, err = run(capsys, "user", "revoke", "ann", "--data", data)
    assert status == 0 and "revoked 1 token" in err, err
    assert token_user(data, token) is None

    status, _, err = run(capsys, "user", "add", "ann", "--data", data)
    assert status == 2 and "exists" in error_line(err)
    status, _, err = run(capsys, "user", "token", "nobody", "--data", data)
    assert status == 2 and "nobody" in error_line(err)
    status, _, err = run(capsys, "user", "add", "../bad", "--data", data)
    assert status == 2 and "bad user name" in error_line(err)
    add_user(capsys, data, "bob")
    status, out, err = run(capsys, "user", "list", "--data", data)
    assert status == 0, err
    rows = [line.split("\t") for line in out.strip().splitlines()]
    assert [row[1] for row in rows] == ["ann", "bob"]
    assert [row[2] for row in rows] == ["-", "-"]


def test_password_login(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    status, _, err = run(capsys, "user", "add", "ann", "--password-stdin", "--data", data)
    assert status == 2 and "8 characters" in error_line(err)
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse\n"))
    status, out, err = run(capsys, "user", "add", "ann", "--password-stdin", "--data", data)
    assert status == 0, err
    assert token_user(data, out.strip()) == "ann"
    status, out, _ = run(capsys, "user", "list", "--data", data)
    assert out.split("\t")[1:] == ["ann", "password\n"]

    app = create_app(ServerConfig(data_dir=data), with_model=False)
    with TestClient(app) as client:
        answer = client.post("/api/login", json={"name": "ann", "password": "correct horse"})
        assert answer.status_code == 200, answer.text
        login = answer.json()["token"]
        assert login != out.strip()
        me = client.get("/api/me", headers={"Authorization": f"Bearer {login}"})
        assert me.status_code == 200 and me.json()["name"] == "ann"
        for name, password in (("ann", "wrong horse"), ("nobody", "correct horse")):
            answer = client.post("/api/login", json={"name": name, "password": password})
            assert answer.status_code == 401, answer.text
            assert answer.json()["detail"] == "wrong name or password"


def test_segany_home_is_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("SEGANY_HOME", str(home))
    status, out, err = run(capsys, "user", "add", "ann")
    assert status == 0, err
    assert (home / "segany.db").is_file()
    assert token_user(home, out.strip()) == "ann"
    status, out, err = run(capsys, "project", "create", "homework", "--owner", "ann")
    assert status == 0, err
    status, out, err = run(capsys, "project", "list")
    assert status == 0, err
    assert out.split("\t")[1:3] == ["homework", "ann"]
    # the database (and SQLite's -wal/-shm files) and nothing else
    assert {p.name.split("-")[0] for p in home.iterdir()} == {"segany.db"}


# ------------------------------------------------------------------------ serve


def test_serve_refuses_other_hosts_without_users(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    def no_server(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a server was started")

    monkeypatch.setattr(uvicorn, "run", no_server)
    data = tmp_path / "data"
    status, out, err = run(capsys, "serve", "--host", "0.0.0.0", "--data", data)
    assert status == 2, (out, err)
    line = error_line(err)
    assert "refusing" in line and "0.0.0.0" in line and "segany user add" in line
    status, out, _ = run(capsys, "user", "list", "--data", data)
    assert out == ""  # no 'local' user was made


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(what: str, check: Any, child: subprocess.Popen[bytes], log: Path, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if child.poll() is not None:
            pytest.fail(f"the server exited ({child.returncode}):\n{log.read_text()}")
        time.sleep(0.1)
    pytest.fail(f"no {what} within {timeout} s:\n{log.read_text()}")


def test_serve_in_a_subprocess(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = _free_port()
    log = tmp_path / "stderr.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "segany.cli.main", "serve", "--data", str(data),
               "--port", str(port)]  # fmt: skip
    with open(log, "wb") as stderr:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    try:
        pattern = re.compile(r"made user 'local'; its API token \(shown once\): (\S+)")

        def token() -> str | None:
            found = pattern.search(log.read_text(errors="replace"))
            return found.group(1) if found else None

        local = _wait("token line", token, child, log, 60)
        base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        _wait("ready server", ready, child, log, 60)
        headers = {"Authorization": f"Bearer {local}"}
        answer = httpx.get(f"{base}/api/projects", headers=headers, timeout=10)
        assert answer.status_code == 200 and answer.json() == [], answer.text
        assert httpx.get(f"{base}/api/projects", timeout=10).status_code == 401
        schema = httpx.get(f"{base}/openapi.json", timeout=10)
        assert schema.status_code == 200 and "/api/projects" in schema.json()["paths"]
        health = httpx.get(f"{base}/healthz", timeout=10)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        child.terminate()
        assert child.wait(timeout=30) is not None
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
    assert (data / "segany.db").is_file()


# ---------------------------------------------------------------------- projects


def _mask(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    mask[y0 + 1, x0 + 1] = False  # a hole, so the RLE is not a plain rectangle
    return mask


def test_project_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    add_user(capsys, data, "ann")
    status, out, err = run(capsys, "project", "create", "cats", "--owner", "ann", "--data", data)
    assert status == 0, err
    project = int(out.strip())
    status, _, err = run(capsys, "project", "create", "x", "--owner", "nobody", "--data", data)
    assert status == 2 and "nobody" in error_line(err)

    folder = tmp_path / "in"
    folder.mkdir()
    sizes = {"one.png": (48, 64), "two.png": (40, 56)}
    for seed, (name, (height, width)) in enumerate(sizes.items()):
        (folder / name).write_bytes(png_bytes(height, width, seed=seed))
    (folder / "bad.png").write_text("not an image at all")
    status, out, err = run(capsys, "project", "import", project, folder, "--data", data)
    assert status == 1, (out, err)
    assert json.loads(out) == {"images_added": 2, "images_failed": 1}
    assert "bad.png" in err and "one.png" not in err and "two.png" not in err
    status, out, _ = run(capsys, "project", "list", "--data", data)
    assert out.strip().split("\t") == [str(project), "cats", "ann", "2 images"]

    # COCO ids 10 and 11, matched to the project's images by file name (folders dropped)
    images = tuple(DatasetImage(id=10 + k, file_name=f"photos/{name}", width=w, height=h)
                   for k, (name, (h, w)) in enumerate(sizes.items()))  # fmt: skip
    annotations = (
        annotation_from_mask(1, 10, 1, _mask(48, 64, (5, 6, 30, 20))),
        annotation_from_mask(2, 10, 18, _mask(48, 64, (35, 10, 60, 44))),
        annotation_from_mask(3, 11, 1, _mask(40, 56, (0, 0, 12, 9))),
    )
    categories: tuple[dict[str, Any], ...] = ({"id": 1, "name": "person"},
                                              {"id": 18, "name": "dog"})  # fmt: skip
    document = coco_document(Dataset(images, annotations, categories))
    coco = tmp_path / "in.json"
    coco.write_text(json.dumps(document))
    status, out, err = run(capsys, "project", "import", project, "--coco", coco, "--data", data)
    assert status == 0, err
    summary = json.loads(out)
    assert (summary["images"], summary["annotations"], summary["skipped"]) == (2, 3, 0)
    status, out, err = run(capsys, "project", "import", project, "--coco", coco, "--data", data)
    assert status == 0 and json.loads(out)["annotations"] == 0, (out, err)  # idempotent

    exported = tmp_path / "out.json"
    status, _, err = run(capsys, "project", "export", project, "--format", "coco", "-o", exported,
                         "--data", data)  # fmt: skip
    assert status == 0, err
    assert "3 annotations of 2 images" in err

    def by_file(doc: dict[str, Any]) -> list[tuple[str, int, str, list[float], float]]:
        names = {image["id"]: Path(image["file_name"]).name for image in doc["images"]}
        return sorted(
            (names[a["image_id"]], a["category_id"], a["segmentation"]["counts"],
             [float(v) for v in a["bbox"]], float(a["area"]))
            for a in doc["annotations"]
        )  # fmt: skip

    back = json.loads(exported.read_text())
    assert by_file(back) == by_file(document)
    assert {(i["file_name"], i["width"], i["height"]) for i in back["images"]} == {
        (name, w, h) for name, (h, w) in sizes.items()
    }

    for fmt in ("yolo", "png", "sa1b"):
        out_dir = tmp_path / fmt
        status, _, err = run(capsys, "project", "export", project, "--format", fmt, "-o", out_dir,
                             "--data", data)  # fmt: skip
        assert status == 0, (fmt, err)
        files = [p for p in out_dir.rglob("*") if p.is_file()]
        assert len(files) >= 2, (fmt, files)

    status, _, err = run(capsys, "project", "export", 999, "-o", tmp_path / "x.json",
                         "--data", data)  # fmt: skip
    assert status == 2 and "no project 999" in error_line(err)
    assert not (tmp_path / "x.json").exists()
    status, _, err = run(capsys, "project", "import", 999, folder, "--data", data)
    assert status == 2 and "no project 999" in error_line(err)
