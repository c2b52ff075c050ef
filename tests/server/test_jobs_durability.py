"""An automatic job survives ``kill -9``: a real server is killed in the middle of a job,
started again, resumes the job, and ends with exactly the masks of an uninterrupted run
of the same job (no image lost, none done twice).

The uninterrupted run is a second project of the same images, run by the restarted
server after the first: the same process, model and threads, so the same masks.
SQLite runs in ``make test``; PostgreSQL only with the ``full`` checks.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from segany.server.auth import add_user, issue_token
from segany.server.database import open_database
from segany.server.loadtest import ServerProcess
from tests.server.test_durability import _consistent as consistent
from tests.server.test_stages import FAST, shapes_png

pytestmark = pytest.mark.slow
IMAGES = 6


def _prepare(db_url: str) -> str:
    db = open_database(db_url)
    with db.session() as session:
        token = issue_token(session, add_user(session, "engine")).token
    db.close()
    return token


def _project(http: httpx.Client, name: str) -> int:
    project = int(http.post("/api/projects", json={"name": name}).json()["id"])
    assert http.patch(f"/api/projects/{project}/settings", json=FAST).status_code == 200
    for seed in range(IMAGES):
        files = {"file": (f"shapes{seed}.png", shapes_png(seed), "image/png")}
        assert http.post(f"/api/projects/{project}/images", files=files).status_code == 201
    return project


def _wait(http: httpx.Client, job: int, until: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = dict(http.get(f"/api/jobs/{job}").json())
        if until(state):
            return state
        time.sleep(0.02)
    raise AssertionError(f"job {job}: {state}")


def _masks(http: httpx.Client, project: int) -> set[tuple[str, str, int]]:
    names = {i["id"]: i["file_name"] for i in http.get(f"/api/projects/{project}/images").json()}
    found = http.get(f"/api/projects/{project}/annotations", params={"status": "all"}).json()
    assert all(a["stage"] == "auto" and a["status"] == "accepted" for a in found)
    masks = {(names[a["image_id"]], a["segmentation"]["counts"], a["category_id"]) for a in found}
    assert len(masks) == len(found)  # none twice
    return masks


def _kill_during_a_job(db_url: str, data: Path) -> None:
    token = _prepare(db_url)
    server = ServerProcess(data, db_url, threads=1).start()
    http = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    try:
        http.base_url = httpx.URL(server.url)
        project = _project(http, "killed")
        job = http.post(f"/api/projects/{project}/jobs", json={"kind": "auto"}).json()["id"]
        seen = _wait(http, job, lambda s: s["done"] >= 2)
        server.kill()
        assert seen["done"] < IMAGES, "the job ended before the kill; use more images"

        server.start()  # the same data dir and database: the job is resumed
        http.base_url = httpx.URL(server.url)
        resumed = _wait(http, job, lambda s: s["state"] not in ("queued", "running"))
        assert (resumed["state"], resumed["done"], resumed["total"]) == ("done", IMAGES, IMAGES)
        killed = _masks(http, project)
        assert resumed["masks"] == len(killed) > 0

        reference = _project(http, "uninterrupted")
        again = http.post(f"/api/projects/{reference}/jobs", json={"kind": "auto"}).json()["id"]
        whole = _wait(http, again, lambda s: s["state"] not in ("queued", "running"))
        assert whole["state"] == "done"
        assert killed == _masks(http, reference)
    finally:
        http.close()
        server.stop()
    db = open_database(db_url)
    with db.read() as session:
        rows = session.execute(text("SELECT count(*), count(DISTINCT image_id) FROM job_images "
                                    "WHERE job_id = :job"), {"job": job}).one()  # fmt: skip
        assert tuple(rows) == (IMAGES, IMAGES)
    db.close()
    consistent(db_url)  # integrity holds and every annotation has its history


def test_kill_9_during_a_job_loses_and_repeats_no_image(sqlite_url: str, tmp_path: Path) -> None:
    _kill_during_a_job(sqlite_url, tmp_path / "data")


@pytest.mark.full
def test_kill_9_during_a_job_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    _kill_during_a_job(postgres_url, tmp_path / "data")
