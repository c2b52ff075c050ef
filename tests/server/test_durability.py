"""A real server on loopback: many clients at once lose and duplicate nothing, and a
``kill -9`` in the middle of writes loses no acknowledged write (SQLite and PostgreSQL).

The 60-second, 20-client run of the acceptance is benchmarks/bench_server.py (and the
``full`` test below); ``make test`` runs the same check for a few seconds.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from segany.server.auth import add_user, issue_token
from segany.server.database import open_database
from segany.server.loadtest import ServerProcess, annotate, check_report
from tests.server.conftest import png_bytes

pytestmark = pytest.mark.slow


def _prepare(db_url: str) -> str:
    db = open_database(db_url)
    with db.session() as session:
        token = issue_token(session, add_user(session, "loader")).token
    db.close()
    return token


def _project(url: str, token: str, images: int = 3) -> tuple[int, list[dict[str, Any]]]:
    headers = {"Authorization": f"Bearer {token}"}
    project = httpx.post(f"{url}/api/projects", json={"name": "load"}, headers=headers).json()
    rows = []
    for seed in range(images):
        answer = httpx.post(
            f"{url}/api/projects/{project['id']}/images",
            headers=headers,
            files={"file": (f"{seed}.png", png_bytes(seed=seed), "image/png")},
        )
        rows.append(answer.json())
    return int(project["id"]), rows


def _held(url: str, token: str, project: int) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{url}/api/projects/{project}/annotations",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert answer.status_code == 200
    return list(answer.json())


def _consistent(db_url: str) -> None:
    """Integrity holds and every annotation has its history."""
    db = open_database(db_url)
    with db.read() as session:
        if db.dialect == "sqlite":
            assert session.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            assert session.execute(text("PRAGMA foreign_key_check")).fetchall() == []
        orphans = session.execute(
            text(
                "SELECT count(*) FROM annotations a WHERE NOT EXISTS (SELECT 1 FROM "
                "annotation_events e WHERE e.annotation_id = a.id AND e.action = 'create')"
            )
        ).scalar()
        assert orphans == 0
    db.close()


def _load(db_url: str, data: Path, seconds: float) -> dict[str, Any]:
    token = _prepare(db_url)
    with ServerProcess(data, db_url) as server:
        project, images = _project(server.url, token)
        report = annotate(server.url, token, project, images, clients=20, seconds=seconds)
        result = check_report(report, _held(server.url, token, project))
    assert report.failures == []
    assert report.decode_ms and report.resent > 0
    assert result["lost"] == 0 and result["duplicated"] == 0
    assert result["acked"] == result["held"]
    _consistent(db_url)
    return result


def test_twenty_clients_lose_and_duplicate_nothing(db_url: str, tmp_path: Path) -> None:
    _load(db_url, tmp_path / "data", seconds=4)


@pytest.mark.full
def test_twenty_clients_for_sixty_seconds(db_url: str, tmp_path: Path) -> None:
    _load(db_url, tmp_path / "data", seconds=60)


def test_kill_9_during_writes_loses_no_acknowledged_write(db_url: str, tmp_path: Path) -> None:
    token = _prepare(db_url)
    server = ServerProcess(tmp_path / "data", db_url).start()
    try:
        project, images = _project(server.url, token)
        stop = threading.Event()
        results: dict[str, Any] = {}
        writers = threading.Thread(
            target=lambda: results.update(
                report=annotate(
                    server.url,
                    token,
                    project,
                    images,
                    clients=8,
                    seconds=60,
                    decode=False,
                    stop=stop,
                )
            )
        )
        writers.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(_held(server.url, token, project)) < 30:
            time.sleep(0.1)
        server.kill()  # in the middle of writes
        stop.set()
        writers.join()
        report = results["report"]
        assert len(report.acked) >= 30
        server.start()  # the same data dir and database
        result = check_report(report, _held(server.url, token, project))
        assert result["lost"] == 0 and result["duplicated"] == 0
        assert result["held"] >= result["acked"]  # writes cut off unanswered may be there too
        _consistent(db_url)
        after = annotate(
            server.url, token, project, images, clients=2, seconds=0.5, decode=False, seed=1
        )
        assert after.acked and not after.failures  # and it goes on working
    finally:
        server.stop()
    assert not list((tmp_path / "data" / "images").glob("*/.*.tmp"))
