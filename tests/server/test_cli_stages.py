"""``segany project settings|propose|auto|jobs``: the stages from the command line, run
in-process on a SQLite data dir (the model loads in the process, as without a server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from segany.server.config import ServerConfig
from segany.server.database import Database, open_database
from segany.server.inference import ModelService
from segany.server.jobs import JobRunner
from segany.server.settings import DEFAULTS
from segany.server.tables import Annotation, Job, JobImage
from tests.server.test_cli_server import error_line, run
from tests.server.test_stages import shapes_png

Capture = pytest.CaptureFixture[str]


@pytest.fixture
def data(tmp_path: Path, capsys: Capture) -> Path:
    """A data dir with user ann and her project 1 of two pictures, set to FAST."""
    folder = tmp_path / "data"
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for seed in (1, 2):
        (pictures / f"shapes{seed}.png").write_bytes(shapes_png(seed))
    for argv in (
        ["user", "add", "ann"],
        ["project", "create", "p", "--owner", "ann"],
        ["project", "import", "1", pictures],
        ["project", "settings", "1", "--points-per-side", "8", "--pred-iou-thresh", "0.3",
         "--stability-score-thresh", "0.3"],
    ):  # fmt: skip
        status, _, err = run(capsys, *argv, "--data", folder)
        assert status == 0, (argv, err)
    return folder


def _db(data: Path) -> Database:
    return open_database(ServerConfig(data_dir=data).database_url)


def _count(data: Path, query: Any) -> int:
    db = _db(data)
    try:
        with db.read() as session:
            return int(session.scalar(query) or 0)
    finally:
        db.close()


def test_settings_show_change_and_refuse(tmp_path: Path, capsys: Capture) -> None:
    data = tmp_path / "data"
    run(capsys, "user", "add", "ann", "--data", data)
    run(capsys, "project", "create", "p", "--owner", "ann", "--data", data)
    status, out, _ = run(capsys, "project", "settings", 1, "--data", data)
    assert status == 0 and json.loads(out) == DEFAULTS
    status, out, _ = run(capsys, "project", "settings", 1, "--strategy", "objects",
                         "--overlap-iou", "0.7", "--data", data)  # fmt: skip
    assert status == 0
    assert json.loads(out) == {**DEFAULTS, "strategy": "objects", "overlap_iou": 0.7}
    for argv, words in (
        (["settings", 1, "--points-per-side", 0], "points_per_side must be an integer from 1"),
        (["settings", 1, "--pred-iou-thresh", "nan"], "pred_iou_thresh must be a number"),
        (["settings", 1, "--strategy", "bogus"], "invalid choice: 'bogus'"),
        (["settings", 1, "--points-per-side", "many"], "invalid int value: 'many'"),
        (["settings", 9], "no project 9"),
        (["propose", 9], "no project 9"),
        (["auto", 9, "--run"], "no project 9"),
        (["jobs", 9], "no project 9"),
        (["auto", 1, "--run", "--wait"], "not allowed with argument"),
    ):
        status, _, err = run(capsys, "project", *argv, "--data", data)
        assert status == 2, (argv, err)
        assert words in error_line(err), (argv, err)
    status, out, _ = run(capsys, "project", "settings", 1, "--data", data)
    assert json.loads(out)["overlap_iou"] == 0.7  # the refused changes changed nothing


def test_propose_then_auto_run_and_jobs(data: Path, capsys: Capture) -> None:
    status, out, err = run(capsys, "project", "propose", 1, "--image", 1, "--data", data)
    assert status == 0, err
    first = json.loads(out)
    assert first["images"] == 1 and first["created"] > 0
    status, out, _ = run(capsys, "project", "propose", 1, "--image", 1, "--data", data)
    again = json.loads(out)
    assert again["created"] == 0 and again["skipped"] >= first["created"]  # not twice
    status, _, err = run(capsys, "project", "propose", 1, "--image", 99, "--data", data)
    assert status == 2 and "no image 99 in project 1" in error_line(err)

    status, out, err = run(capsys, "project", "auto", 1, "--run", "--data", data)
    assert status == 0, err
    ended = json.loads(out.strip().splitlines()[-1])
    assert (ended["state"], ended["images"]) == ("done", 2)
    auto = select(func.count()).where(Annotation.stage == "auto")
    assert ended["masks"] == _count(data, auto) > 0  # image 2's: image 1 has its proposals
    assert _count(data, auto.where(Annotation.image_id == 1)) == 0
    status, out, _ = run(capsys, "project", "jobs", 1, "--data", data)
    assert out.startswith(f"1\tdone\t2/2 images\t{ended['masks']} masks\t")
    status, out, _ = run(capsys, "project", "propose", 1, "--data", data)
    assert json.loads(out)["created"] == 0  # image 2's masks overlap the job's
    proposed = _count(data, select(func.count()).where(Annotation.status == "proposed"))
    assert proposed == first["created"]

    status, out, _ = run(capsys, "project", "auto", 1, "--data", data)  # queued for a server
    assert status == 0 and out.strip() == "2"
    status, _, err = run(capsys, "project", "auto", 1, "--data", data)
    assert status == 2 and "already has job 2 (queued" in error_line(err)
    status, out, err = run(capsys, "project", "auto", 1, "--run", "--data", data)
    assert status == 0 and "job 2 is already queued; taking it up" in err
    assert json.loads(out.strip().splitlines()[-1])["masks"] == 0  # all overlap job 1's

    out_file = data.parent / "coco.json"
    status, _, err = run(capsys, "project", "export", 1, "-o", out_file, "--data", data)
    assert status == 0, err
    exported = json.loads(out_file.read_text())["annotations"]
    assert len(exported) == ended["masks"]  # the accepted masks only: no proposals
    assert {a["segany"]["stage"] for a in exported} == {"auto"}


def test_ctrl_c_cancels_a_job_run_here(
    data: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = JobRunner._write
    calls = []

    def interrupted(self: JobRunner, *args: Any) -> Any:
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl+C while the second image is written
        return write(self, *args)

    monkeypatch.setattr(JobRunner, "_write", interrupted)
    status, _, err = run(capsys, "project", "auto", 1, "--run", "--data", data)
    assert status == 130
    assert "job 1 cancelled after 1 of 2 images" in err
    db = _db(data)
    with db.read() as session:
        job = session.get_one(Job, 1)
        assert (job.state, job.done) == ("cancelled", 1)
        assert session.scalar(select(func.count()).select_from(JobImage)) == 1
        made = session.scalar(select(func.count()).where(Annotation.stage == "auto"))
        assert made == job.masks > 0
    db.close()


def test_auto_wait_follows_a_job_that_a_server_runs(
    data: Path, capsys: Capture, service: ModelService
) -> None:
    status, out, _ = run(capsys, "project", "auto", 1, "--data", data)
    assert status == 0 and out.strip() == "1"
    db = _db(data)
    runner = JobRunner(db, ServerConfig(data_dir=data), service, poll_s=0.1).start()
    try:
        status, out, err = run(capsys, "project", "auto", 1, "--wait", "--data", data)
    finally:
        runner.stop()
        db.close()
    assert status == 0, err
    assert json.loads(out.strip().splitlines()[-1])["state"] == "done"
