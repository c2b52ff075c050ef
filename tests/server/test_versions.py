"""Model versions: registered, listed and switched through the API; the served decoder,
the embeddings and the masks' provenance follow the active version, and come back on a
rollback; a version activated elsewhere (the CLI) is picked up; a restarted server serves
the active version from its first request."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from segany.data.rle import mask_to_rle
from segany.loading import load_model
from segany.server import versions
from segany.server.app import create_app
from segany.server.config import ServerConfig
from segany.server.database import open_database
from segany.server.inference import ModelService
from segany.server.tables import ModelVersion
from segany.server.versions import VersionSource
from segany.server.weights_store import store_weights
from segany.weights import save_state_dict_file, sha256_file
from tests.server.conftest import Served, make_served
from tests.server.test_stages import FAST, shapes_png

NUDGE = 0.25
IOU_BIAS = "mask_decoder.iou_prediction_head.layers.2.bias"


@pytest.fixture(scope="module")
def nudged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled weights with the IoU head's output bias raised by NUDGE: the same
    encoder and masks, every predicted IoU NUDGE higher."""
    state = load_model(progress=False).state_dict()
    state[IOU_BIAS] = state[IOU_BIAS] + NUDGE
    return save_state_dict_file(state, tmp_path_factory.mktemp("w") / "nudged.safetensors")


@pytest.fixture
def local(tmp_path: Path, service: ModelService) -> Iterator[Served]:
    state, db = make_served(
        f"sqlite:///{tmp_path}/s.db", tmp_path / "data", service, version_poll_s=0.1
    )
    with state.client:
        yield state
    db.close()


def _register(served: Served, weights: Path, parent: str) -> dict[str, Any]:
    """``weights`` stored in the data dir and registered (as ``segany train`` does)."""
    path, sha = store_weights(served.config, weights)
    source = VersionSource("segany_shapes", sha, path, parent_sha256=parent, project_id=None)
    with served.db.session() as session:
        row, created = versions.register(session, source)
    assert created
    return {"id": row.id, "label": row.label, "sha": sha}


def _get(served: Served, url: str) -> Any:
    answer = served.client.get(url, headers=served.auth())
    assert answer.status_code == 200, answer.text
    return answer


def _annotate(served: Served, project: int, image: int, sha: str | None) -> int:
    mask = torch.zeros(96, 128, dtype=torch.bool)
    mask[10:30, 10:40] = True
    body = {
        "image_id": image,
        "category_id": 1,
        "segmentation": mask_to_rle(mask.numpy()),
        "model_name": "segany_shapes",
        "weights_sha256": sha,
    }
    answer = served.client.post(
        f"/api/projects/{project}/annotations", json=body, headers=served.auth()
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def test_switch_and_roll_back(local: Served, service: ModelService, nudged: Path) -> None:
    """v1 is the served model; activating v2 changes the weights key, the embedding's
    cache, the decoder ONNX, the decoded scores and the proposals' provenance; activating
    v1 again brings each back; counts of masks per version; bad activations change
    nothing."""
    auth = local.auth()
    first = _get(local, "/api/model").json()
    assert first["version"] == "v1" and first["weights_sha256"] == service.weights_key
    v1_sha = first["weights_sha256"]
    listed = _get(local, "/api/model/versions").json()
    assert [(v["label"], v["active"], v["masks"]) for v in listed] == [("v1", True, 0)]
    v2 = _register(local, nudged, parent=v1_sha)
    assert v2["label"] == "v2" and v2["sha"] == sha256_file(nudged)
    assert (local.config.data_dir / f"models/weights/{v2['sha']}.safetensors").is_file()

    project = local.project()
    image = local.upload(project, shapes_png(1), name="s1.png").json()
    local.client.patch(f"/api/projects/{project}/settings", json=FAST, headers=auth)
    click = {"points": [[40, 40]], "labels": [1]}

    def state() -> tuple[str, bytes, Any, bytes]:
        embedding = _get(local, f"/api/images/{image['id']}/embedding")
        key = json.loads(embedding.headers["x-segany-embedding"])["weights_sha256"]
        decoded = local.client.post(
            f"/api/images/{image['id']}/decode", json=click, headers=auth
        ).json()
        onnx = _get(local, "/api/model/decoder.onnx").content
        return key, embedding.content, decoded, onnx

    key1, embedding1, decoded1, onnx1 = state()
    assert key1 == decoded1["weights_sha256"] == v1_sha

    answer = local.client.post(f"/api/model/versions/{v2['id']}/activate", headers=auth)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["label"], answer.json()["active"]) == ("v2", True)
    described = _get(local, "/api/model").json()
    assert (described["version"], described["weights_sha256"]) == ("v2", v2["sha"])
    key2, embedding2, decoded2, onnx2 = state()
    assert key2 == decoded2["weights_sha256"] == v2["sha"]
    assert embedding2 == embedding1  # the same encoder, computed again under the new key
    assert service.cache.tensor_path(image["sha256"]).parent.parent.name == v2["sha"][:16]
    assert decoded2["masks"] == decoded1["masks"]
    assert decoded2["scores"] == pytest.approx([s + NUDGE for s in decoded1["scores"]], abs=1e-4)
    assert onnx2 != onnx1
    assert (service.config.models_dir / v2["sha"][:16] / "decoder.onnx").is_file()
    proposals = local.client.post(
        f"/api/projects/{project}/images/{image['id']}/proposals", headers=auth
    ).json()["proposals"]
    assert proposals and {p["weights_sha256"] for p in proposals} == {v2["sha"]}

    _annotate(local, project, image["id"], v1_sha)
    deleted = _annotate(local, project, image["id"], v1_sha)
    gone = local.client.delete(
        f"/api/projects/{project}/annotations/{deleted}", params={"version": 1}, headers=auth
    )
    assert gone.status_code == 200
    other = local.project("bob's", user="bob")  # bob's masks are not ann's to count
    bobs = local.upload(other, shapes_png(2), name="s2.png", user="bob").json()
    body = {"image_id": bobs["id"], "category_id": 1, "weights_sha256": v1_sha,
            "segmentation": proposals[0]["segmentation"]}  # fmt: skip
    bobs_mask = local.client.post(
        f"/api/projects/{other}/annotations", json=body, headers=local.auth("bob")
    )
    assert bobs_mask.status_code == 201, bobs_mask.text
    counts = {v["label"]: v["masks"] for v in _get(local, "/api/model/versions").json()}
    assert counts == {"v1": 1, "v2": len(proposals)}

    rollback = local.client.post("/api/model/versions/1/activate", headers=auth)
    assert rollback.status_code == 200 and rollback.json()["label"] == "v1"
    key3, embedding3, decoded3, onnx3 = state()
    assert (key3, embedding3, onnx3) == (key1, embedding1, onnx1)
    assert decoded3["scores"] == pytest.approx(decoded1["scores"], abs=1e-6)
    assert decoded3["weights_sha256"] == v1_sha

    assert local.client.post("/api/model/versions/99/activate", headers=auth).status_code == 404
    (local.config.data_dir / f"models/weights/{v2['sha']}.safetensors").write_bytes(b"broken")
    refused = local.client.post(f"/api/model/versions/{v2['id']}/activate", headers=auth)
    assert refused.status_code == 409 and "sha256" in refused.json()["detail"]
    listed = _get(local, "/api/model/versions").json()
    assert [(v["label"], v["active"]) for v in listed] == [("v1", True), ("v2", False)]
    assert local.client.get("/api/model/versions").status_code == 401


def test_a_version_activated_elsewhere_is_picked_up(
    local: Served, service: ModelService, nudged: Path
) -> None:
    """The CLI marks a version active in the database; the server follows within its
    poll interval (0.1 s here), and back."""
    v1_sha = _get(local, "/api/model").json()["weights_sha256"]
    v2 = _register(local, nudged, parent=v1_sha)
    for version_id, label in ((v2["id"], "v2"), (1, "v1")):
        with local.db.session() as session:
            versions.activate(session, version_id)
        deadline = time.monotonic() + 20
        while _get(local, "/api/model").json()["version"] != label:
            assert time.monotonic() < deadline, f"the server did not switch to {label}"
            time.sleep(0.05)
    assert service.weights_key == v1_sha


def test_a_restarted_server_serves_the_active_version(tmp_path: Path, nudged: Path) -> None:
    """The active version is loaded before the model is ready: no request sees another."""
    config = ServerConfig(data_dir=tmp_path / "data", db_url=f"sqlite:///{tmp_path}/s.db")
    db = open_database(config.database_url)
    path, sha = store_weights(config, nudged)
    with db.session() as session:
        versions.register(session, VersionSource("segany_shapes", "0" * 64))  # v1, active
        versions.register(session, VersionSource("segany_shapes", sha, path), active=True)
    app = create_app(config, db=db)
    with TestClient(app) as client:
        service: ModelService = app.state.service
        assert service.wait_ready(120), service.error
        assert (service.version, service.weights_key) == ("v2", sha)
        assert service.model.state_dict()[IOU_BIAS].allclose(
            load_model(progress=False).state_dict()[IOU_BIAS] + NUDGE
        )
        assert client.get("/readyz").status_code == 200
    db.close()


def test_register_and_activate_keep_one_active(db_url: str) -> None:
    """Labels in order, the first version active, re-registering the same weights is a
    no-op, activation leaves exactly one active, an unknown id is refused."""
    db = open_database(db_url)
    try:
        with db.session() as session:
            a, new_a = versions.register(session, VersionSource("m", "a" * 64))
            b, _ = versions.register(session, VersionSource("m", "b" * 64, "models/b"))
            c, _ = versions.register(session, VersionSource("m", "c" * 64), active=True)
            again, new = versions.register(session, VersionSource("m", "a" * 64))
        assert new_a and not new and again.id == a.id
        assert [a.label, b.label, c.label] == ["v1", "v2", "v3"]
        with db.session() as session:
            versions.activate(session, b.id)
        with db.read() as session:
            assert versions.active_version(session).label == "v2"  # type: ignore[union-attr]
            rows = versions.list_versions(session)
            assert [r.active for r in rows] == [False, True, False]
        with pytest.raises(Exception, match="no model version 9"), db.session() as session:
            versions.activate(session, 9)
        with db.read() as session:
            assert session.query(ModelVersion).filter_by(active=True).count() == 1
    finally:
        db.close()
