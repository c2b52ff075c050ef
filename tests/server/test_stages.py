"""The semi-automatic and automatic stages through the API, on SQLite and PostgreSQL:
project settings, proposals and their review, automatic jobs and the runner.

The bundled model's predicted IoUs and stability scores are low, so the projects here run
with thresholds of 0.3 and a grid of 8 x 8 on small pictures of a few shapes: a few masks
each.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw
from sqlalchemy import func, select

from segany.data.rle import mask_to_rle, rle_to_mask
from segany.server.auth import add_user
from segany.server.inference import ModelService
from segany.server.jobs import JobRunner, cancel_job, create_job
from segany.server.proposals import Footprint
from segany.server.settings import DEFAULTS
from segany.server.store import create_project, get_project
from segany.server.tables import Annotation, JobImage, User
from segany.server.tables import Image as ImageRow
from tests.server.conftest import Served, make_served

FAST = {"points_per_side": 8, "pred_iou_thresh": 0.3, "stability_score_thresh": 0.3}


def shapes_png(seed: int, size: tuple[int, int] = (96, 128)) -> bytes:
    """A PNG of five rectangles and ellipses of random colours on a dark, noisy ground."""
    rng = np.random.default_rng(seed)
    height, width = size
    image = Image.fromarray(rng.integers(20, 60, (height, width, 3), dtype=np.uint8))
    draw = ImageDraw.Draw(image)
    for k in range(5):
        x0, y0 = int(rng.integers(0, width - 30)), int(rng.integers(0, height - 30))
        box = [x0, y0, x0 + int(rng.integers(15, 50)), y0 + int(rng.integers(15, 50))]
        colour = tuple(int(c) for c in rng.integers(80, 256, 3))
        (draw.ellipse if k % 2 else draw.rectangle)(box, fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _project(served: Served, images: int = 1, **settings: Any) -> tuple[int, list[int]]:
    project = served.project()
    answer = served.client.patch(
        f"/api/projects/{project}/settings", json={**FAST, **settings}, headers=served.auth()
    )
    assert answer.status_code == 200, answer.text
    ids = []
    for seed in range(1, images + 1):
        upload = served.upload(project, shapes_png(seed), name=f"shapes{seed}.png")
        assert upload.status_code == 201, upload.text
        ids.append(upload.json()["id"])
    return project, ids


def _listed(served: Served, project: int, **query: Any) -> list[dict[str, Any]]:
    answer = served.client.get(
        f"/api/projects/{project}/annotations", params=query, headers=served.auth()
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def _iou(a: dict[str, Any], b: dict[str, Any]) -> float:
    x, y = rle_to_mask(a), rle_to_mask(b)
    return float((x & y).sum() / (x | y).sum())


# -------------------------------------------------------------------- settings


def test_settings_default_change_and_refusals(served: Served) -> None:
    project = served.project()
    url, auth = f"/api/projects/{project}/settings", served.auth()
    assert served.client.get(f"/api/projects/{project}", headers=auth).json()["settings"] == (
        DEFAULTS
    )
    changed = served.client.patch(url, json={"points_per_side": 8, "strategy": "objects"},
                                  headers=auth)  # fmt: skip
    assert changed.status_code == 200
    expected = {**DEFAULTS, "points_per_side": 8, "strategy": "objects"}
    assert changed.json() == expected
    assert served.client.get("/api/projects", headers=auth).json()[0]["settings"] == expected
    for body, words in (
        ({"points_per_sides": 8}, "unknown setting points_per_sides"),
        ({"points_per_side": 0}, "points_per_side must be an integer from 1 to 128; got 0"),
        ({"points_per_side": 8.5}, "points_per_side must be an integer"),
        ({"points_per_side": True}, "points_per_side must be an integer"),
        ({"pred_iou_thresh": 1.5}, "pred_iou_thresh must be a number from 0 to 1; got 1.5"),
        ({"overlap_iou": 0}, "overlap_iou must be a number above 0 to 1"),
        ({"strategy": "x" * 100_000}, "strategy must be one of grid, objects"),
        ({"stability_score_thresh": "0.5"}, "stability_score_thresh must be a number"),
    ):
        answer = served.client.patch(url, json=body, headers=auth)
        assert answer.status_code == 422, (body, answer.text)
        assert words in answer.json()["detail"], answer.text
        assert len(answer.text) < 300  # a long value is not repeated
    assert served.client.patch(url, json=[1], headers=auth).status_code == 422
    # nothing was changed by the refused ones; null puts a default back
    reset = served.client.patch(url, json={"strategy": None}, headers=auth)
    assert reset.json() == {**DEFAULTS, "points_per_side": 8}
    assert served.client.patch(url, json={}, headers=served.auth("bob")).status_code == 404


def test_footprint_iou_equals_the_masks() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        masks = []
        for _ in range(2):
            mask = np.zeros((40, 50), bool)
            x, y = rng.integers(0, 40), rng.integers(0, 30)
            mask[y : y + rng.integers(1, 15), x : x + rng.integers(1, 15)] = True
            mask &= rng.random(mask.shape) < 0.8
            masks.append(mask)
        a, b = masks
        expected = (a & b).sum() / max((a | b).sum(), 1)
        got = Footprint(mask_to_rle(a)).iou(Footprint(mask_to_rle(b)))
        assert got == pytest.approx(expected)


# ------------------------------------------------------------------ proposals


def test_proposals_are_offered_once_reviewed_and_undone(served: Served) -> None:
    project, (image,) = _project(served)
    auth = served.auth()
    url = f"/api/projects/{project}/images/{image}/proposals"
    first = served.client.post(url, headers=auth)
    assert first.status_code == 200, first.text
    found = first.json()
    proposals = found["proposals"]
    assert found["created"] == len(proposals) >= 4
    model = served.client.get("/api/model", headers=auth).json()
    for p in proposals:
        assert (p["stage"], p["status"], p["category_id"]) == ("semi", "proposed", 1)
        assert p["model_name"] == model["name"]
        assert p["weights_sha256"] == model["weights_sha256"]
        assert p["predicted_iou"] > 0.3 and p["stability_score"] >= 0.3
        assert p["prompts"]["generator"] == "grid" and len(p["prompts"]["points"]) == 1
    scores = [p["predicted_iou"] for p in proposals]
    assert scores == sorted(scores, reverse=True)
    for i, a in enumerate(proposals):  # no two offered masks overlap by overlap_iou
        assert all(_iou(a["segmentation"], b["segmentation"]) < 0.5 for b in proposals[:i])

    again = served.client.post(url, headers=auth).json()
    assert again["created"] == 0 and again["skipped"] == found["created"] + found["skipped"]
    assert _listed(served, project) == []  # nothing accepted yet: exports see nothing
    assert len(_listed(served, project, status="proposed")) == len(proposals)

    one, two, three, four = (p["id"] for p in proposals[:4])
    base = f"/api/projects/{project}/annotations"
    accepted = served.client.post(f"{base}/{one}/accept", json={"category_id": 2}, headers=auth)
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["status"], accepted.json()["category_id"]) == ("accepted", 2)
    assert served.client.post(f"{base}/{one}/accept", headers=auth).status_code == 409
    assert served.client.post(f"{base}/{one}/reject", headers=auth).status_code == 409
    stale = served.client.post(f"{base}/{two}/reject", json={"version": 7}, headers=auth)
    assert stale.status_code == 409
    rejected = served.client.post(f"{base}/{two}/reject", headers=auth)
    assert rejected.json()["status"] == "rejected"
    assert served.client.post(f"{base}/999999/accept", headers=auth).status_code == 404
    bad_label = served.client.post(f"{base}/{three}/accept", json={"category_id": 999},
                                   headers=auth)  # fmt: skip
    assert bad_label.status_code == 400

    # accepted as edited: the mask as sent, marked edited, without the model's scores
    edited = rle_to_mask(proposals[2]["segmentation"]).copy()
    edited[:5, :5] = True
    body = {"segmentation": mask_to_rle(edited), "version": proposals[2]["version"]}
    answer = served.client.post(f"{base}/{three}/accept", json=body, headers=auth).json()
    assert answer["status"] == "accepted" and answer["prompts"]["edited"] is True
    assert answer["predicted_iou"] is None and answer["prompts"]["points"]
    assert np.array_equal(rle_to_mask(answer["segmentation"]), edited)

    by_status = {s: {a["id"] for a in _listed(served, project, status=s)}
                 for s in ("accepted", "proposed", "rejected", "all")}  # fmt: skip
    assert by_status["accepted"] == {one, three} and by_status["rejected"] == {two}
    assert by_status["all"] == {p["id"] for p in proposals}
    coco = served.client.get(f"/api/projects/{project}/export", headers=auth).json()
    assert {a["id"] for a in coco["annotations"]} == {one, three}

    # undo: the edited mask back to its proposal; redo: accepted as edited again
    undone = served.client.post(f"/api/projects/{project}/undo", headers=auth).json()
    assert undone["id"] == three and undone["status"] == "proposed"
    assert undone["segmentation"] == proposals[2]["segmentation"]
    assert undone["predicted_iou"] == proposals[2]["predicted_iou"]
    redone = served.client.post(f"/api/projects/{project}/redo", headers=auth).json()
    assert redone["status"] == "accepted" and redone["prompts"]["edited"] is True
    history = served.client.get(f"{base}/{two}/history", headers=auth).json()
    assert [e["action"] for e in history] == ["create", "reject"]
    assert (history[1]["before"]["status"], history[1]["after"]["status"]) == (
        "proposed",
        "rejected",
    )

    # a rejected proposal is not offered again; a deleted one is
    version = next(p["version"] for p in _listed(served, project, status="proposed")
                   if p["id"] == four)  # fmt: skip
    deleted = served.client.delete(f"{base}/{four}", params={"version": version}, headers=auth)
    assert deleted.status_code == 200
    third = served.client.post(url, headers=auth).json()
    assert third["created"] == 1
    assert third["proposals"][0]["segmentation"] == proposals[3]["segmentation"]


def test_proposals_need_the_callers_image(served: Served) -> None:
    project, (image,) = _project(served)
    other = served.project("bob's", user="bob")
    auth = served.auth()
    assert served.client.post(f"/api/projects/{other}/images/{image}/proposals",
                              headers=auth).status_code == 404  # fmt: skip
    assert served.client.post(f"/api/projects/{project}/images/999/proposals",
                              headers=auth).status_code == 404  # fmt: skip


# ----------------------------------------------------------------------- jobs


def _finished(served: Served, job: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = served.client.get(f"/api/jobs/{job}", headers=served.auth()).json()
        if answer["state"] not in ("queued", "running"):
            return dict(answer)
        time.sleep(0.1)
    raise AssertionError(f"job {job} did not finish: {answer}")


def test_auto_job_masks_every_image_once(served: Served) -> None:
    project, images = _project(served, images=2)
    auth = served.auth()
    # a manual annotation of a mask SegEvery finds, and the other proposals deleted
    proposals = served.client.post(
        f"/api/projects/{project}/images/{images[0]}/proposals", headers=auth
    ).json()["proposals"]
    manual = {"image_id": images[0], "category_id": 3, "segmentation": proposals[0]["segmentation"]}
    base = f"/api/projects/{project}/annotations"
    assert served.client.post(base, json=manual, headers=auth).status_code == 201
    for p in proposals:
        gone = served.client.delete(f"{base}/{p['id']}", params={"version": 1}, headers=auth)
        assert gone.status_code == 200
    url = f"/api/projects/{project}/jobs"
    created = served.client.post(url, json={"kind": "auto"}, headers=auth)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["state"] in ("queued", "running") and job["total"] == 2
    assert job["settings"] == {**DEFAULTS, **FAST}
    assert served.client.post(url, json={}, headers=auth).status_code == 409
    assert served.client.post(url, json={"kind": "other"}, headers=auth).status_code == 422
    assert served.client.get(f"/api/jobs/{job['id']}", headers=served.auth("bob")).status_code == (
        404
    )
    done = _finished(served, job["id"])
    assert (done["state"], done["done"], done["total"], done["error"]) == ("done", 2, 2, None)
    assert done["heartbeat_at"] is not None
    auto = [a for a in _listed(served, project) if a["stage"] == "auto"]
    assert len(auto) == done["masks"] > 0
    assert {a["image_id"] for a in auto} <= set(images)
    assert all(a["status"] == "accepted" and a["model_name"] for a in auto)
    first_image = [a for a in auto if a["image_id"] == images[0]]
    assert 0 < len(first_image) < len(proposals)  # the deleted ones again, not the manual one
    assert all(_iou(a["segmentation"], manual["segmentation"]) < 0.5 for a in first_image)
    with served.db.read() as session:
        rows = session.scalars(select(JobImage).where(JobImage.job_id == job["id"])).all()
        assert sorted(r.image_id for r in rows) == images
        assert sum(r.masks for r in rows) == done["masks"]
    # machine-made masks are not the caller's changes to undo: her last deletion is
    undone = served.client.post(f"/api/projects/{project}/undo", headers=auth).json()
    assert (undone["id"], undone["stage"]) == (proposals[-1]["id"], "semi")
    assert not undone["deleted"]

    again = served.client.post(url, headers=auth).json()
    second = _finished(served, again["id"])
    assert (second["state"], second["done"], second["masks"]) == ("done", 2, 0)
    listed = served.client.get(url, headers=auth).json()
    assert [j["id"] for j in listed] == [job["id"], again["id"]]
    cancel = served.client.post(f"/api/jobs/{job['id']}/cancel", headers=auth)
    assert cancel.status_code == 409 and "done" in cancel.json()["detail"]


def test_runner_stops_after_the_current_image_when_cancelled(
    db_url: str, tmp_path: Path, service: ModelService
) -> None:
    served, db = make_served(db_url, tmp_path / "data", None)  # no runner: this test runs it
    with served.client:
        project, images = _project(served, images=3)
    with db.session() as session:
        user = add_user(session, "cara")
        empty = create_project(session, user, "empty")
        queued = create_job(session, user, empty)
        cancel_job(session, None, queued.id)

    runner = JobRunner(db, served.config, service)
    assert runner.run(queued.id).state == "cancelled"  # a cancelled job does not start
    with db.session() as session:
        job = create_job(session, user, get_project(session, None, project))

    def cancel_after_the_first(current: Any) -> None:
        if current.done == 1:
            with db.session() as session:
                cancel_job(session, None, current.id)

    ended = runner.run(job.id, progress=cancel_after_the_first)
    assert (ended.state, ended.done, ended.total) == ("cancelled", 1, 3)
    with db.read() as session:
        made = session.scalar(select(func.count()).where(Annotation.stage == "auto"))
        assert made == ended.masks
        assert session.scalar(select(func.count()).select_from(JobImage)) == 1
        lost = session.get_one(ImageRow, images[0])
    (served.config.images_dir / lost.stored_as).unlink()  # a job that cannot go on says why
    with db.session() as session:
        failing = create_job(session, user, get_project(session, None, project))
    failed = runner.run(failing.id)
    assert failed.state == "failed" and failed.done == 0
    assert failed.error is not None and f"image {images[0]} (shapes1.png)" in failed.error
    db.close()


def test_a_request_goes_before_the_image_a_job_has_queued(
    db_url: str, tmp_path: Path, service: ModelService, monkeypatch: pytest.MonkeyPatch
) -> None:
    served, db = make_served(db_url, tmp_path / "data", None)  # no runner: this test runs it
    with served.client:
        project, _ = _project(served, images=2)
    with db.session() as session:
        row = get_project(session, None, project)
        job = create_job(session, session.get_one(User, row.owner_id), row)
    order: list[str] = []
    segment, submit = service.segment_everything, service.queue.submit
    queued = threading.Event()

    def submitted(work: Any, *, background: bool = False) -> Any:
        future = submit(work, background=background)
        queued.set()
        return future

    monkeypatch.setattr(
        service, "segment_everything", lambda *a: order.append("image") or segment(*a)
    )
    release = threading.Event()
    service.queue.submit(release.wait)  # the model is busy with a request
    monkeypatch.setattr(service.queue, "submit", submitted)
    runner = threading.Thread(target=JobRunner(db, served.config, service).run, args=(job.id,))
    runner.start()
    assert queued.wait(30)  # the job's first image waits for the model
    decode = submit(lambda: order.append("request"))  # a request comes in behind it
    release.set()
    decode.result(timeout=30)
    runner.join(60)
    assert order == ["request", "image", "image"]
    db.close()
