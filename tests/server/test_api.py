"""The REST API on SQLite and on PostgreSQL: projects, annotations, history, exchange."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from segany.data.coco import read_coco
from segany.data.polygons import mask_to_polygons, polygons_to_mask
from segany.data.rle import mask_to_rle, rle_to_mask
from tests.server.conftest import Served, png_bytes


def _image(served: Served, project: int, seed: int = 0) -> dict[str, Any]:
    answer = served.upload(project, png_bytes(seed=seed), name=f"img{seed}.png")
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _ring(height: int = 96, width: int = 128) -> np.ndarray:
    """A square with a square hole: the case polygons must not lose."""
    mask = np.zeros((height, width), bool)
    mask[20:70, 30:90] = True
    mask[35:55, 50:70] = False
    return mask


def _create(
    served: Served, project: int, image: int, mask: np.ndarray, key: str | None = None, **extra: Any
) -> Any:
    body = {"image_id": image, "category_id": 1, "segmentation": mask_to_rle(mask), **extra}
    headers = served.auth() | ({"Idempotency-Key": key} if key else {})
    return served.client.post(f"/api/projects/{project}/annotations", json=body, headers=headers)


def test_projects_are_private_to_owner_and_members(served: Served) -> None:
    mine = served.project("mine")
    theirs = served.project("theirs", user="bob")
    listed = served.client.get("/api/projects", headers=served.auth()).json()
    assert [p["id"] for p in listed] == [mine]
    assert listed[0]["categories"][0] == {"id": 1, "name": "person", "supercategory": "person"}
    assert len(listed[0]["categories"]) == 80
    assert served.client.get(f"/api/projects/{theirs}", headers=served.auth()).status_code == 404
    assert served.client.get("/api/projects/999", headers=served.auth()).status_code == 404
    assert served.client.get("/api/projects").status_code == 401
    added = served.client.post(
        f"/api/projects/{theirs}/members", json={"user": "ann"}, headers=served.auth("bob")
    )
    assert added.status_code == 204
    assert served.client.get(f"/api/projects/{theirs}", headers=served.auth()).status_code == 200


def test_annotation_create_is_idempotent_and_keeps_provenance(served: Served) -> None:
    project = served.project()
    image = _image(served, project)
    mask = _ring()
    provenance = {
        "stage": "semi",
        "prompts": {"points": [[40.0, 30.0]], "labels": [1]},
        "model_name": "segany_shapes",
        "weights_sha256": "ab" * 32,
        "predicted_iou": 0.91,
        "stability_score": 0.97,
    }
    first = _create(served, project, image["id"], mask, key="k-1", **provenance)
    again = _create(served, project, image["id"], mask, key="k-1", **provenance)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    row = first.json()
    assert row["bbox"] == [30.0, 20.0, 60.0, 50.0] and row["area"] == int(mask.sum())
    assert {k: row[k] for k in provenance} == provenance
    assert np.array_equal(rle_to_mask(row["segmentation"]), mask)
    listed = served.client.get(f"/api/projects/{project}/annotations", headers=served.auth()).json()
    assert len(listed) == 1
    other = _create(served, project, image["id"], mask, key="k-2")
    assert other.status_code == 201 and other.json()["id"] != row["id"]


def test_annotation_input_is_checked(served: Served) -> None:
    project = served.project()
    image = _image(served, project)
    wrong_size = _create(served, project, image["id"], np.ones((10, 10), bool))
    assert wrong_size.status_code == 400 and "image" in wrong_size.json()["detail"]
    assert _create(served, project, image["id"], np.zeros((96, 128), bool)).status_code == 400
    bad_label = _create(served, project, image["id"], _ring(), category_id=12)  # not in COCO
    assert bad_label.status_code == 400 and "label set" in bad_label.json()["detail"]
    assert _create(served, project, image["id"], _ring(), stage="guess").status_code == 422
    assert _create(served, project, 999, _ring()).status_code == 404


def test_concurrent_edit_loses_with_409_and_undo_redo(served: Served) -> None:
    project = served.project()
    image = _image(served, project)
    created = _create(served, project, image["id"], _ring()).json()
    url = f"/api/projects/{project}/annotations/{created['id']}"
    first = served.client.patch(url, json={"version": 1, "category_id": 2}, headers=served.auth())
    late = served.client.patch(url, json={"version": 1, "category_id": 3}, headers=served.auth())
    assert first.status_code == 200 and first.json()["version"] == 2
    assert late.status_code == 409 and "version 2" in late.json()["detail"]
    assert served.client.get(url, headers=served.auth()).json()["category_id"] == 2

    undo = served.client.post(f"/api/projects/{project}/undo", headers=served.auth())
    assert undo.status_code == 200 and undo.json()["category_id"] == 1
    redo = served.client.post(f"/api/projects/{project}/redo", headers=served.auth())
    assert redo.status_code == 200 and redo.json()["category_id"] == 2
    assert (
        served.client.post(f"/api/projects/{project}/redo", headers=served.auth()).status_code
        == 404
    )
    # a deletion is undone too; undoing the create hides the annotation
    version = redo.json()["version"]
    gone = served.client.delete(f"{url}?version={version}", headers=served.auth())
    assert gone.status_code == 200 and gone.json()["deleted"]
    listed = f"/api/projects/{project}/annotations"
    assert served.client.get(listed, headers=served.auth()).json() == []
    served.client.post(f"/api/projects/{project}/undo", headers=served.auth())
    assert len(served.client.get(listed, headers=served.auth()).json()) == 1
    actions = [
        e["action"] for e in served.client.get(f"{url}/history", headers=served.auth()).json()
    ]
    assert actions == ["create", "update", "undo", "redo", "delete", "undo"]


def test_undo_refuses_to_overwrite_another_users_edit(served: Served) -> None:
    project = served.project()
    served.client.post(
        f"/api/projects/{project}/members", json={"user": "bob"}, headers=served.auth()
    )
    image = _image(served, project)
    created = _create(served, project, image["id"], _ring()).json()
    url = f"/api/projects/{project}/annotations/{created['id']}"
    edit = served.client.patch(
        url, json={"version": 1, "category_id": 5}, headers=served.auth("bob")
    )
    assert edit.status_code == 200
    undo = served.client.post(f"/api/projects/{project}/undo", headers=served.auth())
    assert undo.status_code == 409
    assert served.client.get(url, headers=served.auth()).json()["category_id"] == 5


def test_coco_round_trip_equals_the_database(served: Served) -> None:
    project = served.project("source")
    images = [_image(served, project, seed) for seed in (1, 2)]
    two_parts = np.zeros((96, 128), bool)
    two_parts[5:15, 5:20] = True
    two_parts[60:90, 100:120] = True
    for image, mask in zip(images, (_ring(), two_parts), strict=True):
        assert (
            _create(served, project, image["id"], mask, stage="auto", predicted_iou=0.8).status_code
            == 201
        )
    exported = served.client.get(
        f"/api/projects/{project}/export?format=coco", headers=served.auth()
    ).json()
    target = served.project("copy")
    for seed in (1, 2):
        _image(served, target, seed)
    imported = served.client.post(
        f"/api/projects/{target}/import/coco", json=exported, headers=served.auth()
    )
    assert imported.status_code == 200 and imported.json()["annotations"] == 2
    repeat = served.client.post(
        f"/api/projects/{target}/import/coco", json=exported, headers=served.auth()
    )
    assert repeat.json()["annotations"] == 0  # importing twice adds nothing

    def held(project_id: int) -> list[tuple[Any, ...]]:
        rows = served.client.get(
            f"/api/projects/{project_id}/annotations", headers=served.auth()
        ).json()
        names = {
            i["id"]: i["file_name"]
            for i in served.client.get(
                f"/api/projects/{project_id}/images", headers=served.auth()
            ).json()
        }
        return sorted(
            (
                names[a["image_id"]],
                a["category_id"],
                a["segmentation"]["counts"],
                a["bbox"],
                a["area"],
                a["stage"],
                a["predicted_iou"],
            )
            for a in rows
        )

    assert held(target) == held(project)
    as_read = read_coco(exported)
    assert len(as_read.annotations) == 2


def test_polygon_export_keeps_the_hole(served: Served) -> None:
    project = served.project()
    image = _image(served, project)
    _create(served, project, image["id"], _ring())
    exported = served.client.get(
        f"/api/projects/{project}/export?format=coco&segmentation=polygon", headers=served.auth()
    ).json()
    polygons = exported["annotations"][0]["segmentation"]
    assert isinstance(polygons, list)
    back = polygons_to_mask(polygons, 96, 128)
    assert not back[45, 60]  # inside the hole
    assert np.array_equal(back, _ring())
    assert mask_to_polygons(_ring())  # the exporter's own polygons, for the record


@pytest.mark.parametrize("fmt", ["sa1b", "yolo", "png"])
def test_folder_exports_come_as_zip(served: Served, fmt: str) -> None:
    import io
    import zipfile

    project = served.project()
    image = _image(served, project)
    _create(served, project, image["id"], _ring())
    answer = served.client.get(
        f"/api/projects/{project}/export?format={fmt}", headers=served.auth()
    )
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(answer.content)).namelist()
    expected = {"sa1b": "img0.json", "yolo": "labels/img0.txt", "png": "img0.png"}[fmt]
    assert expected in names


def test_openapi_documents_the_api(served: Served) -> None:
    schema = served.client.get("/openapi.json").json()
    for path in (
        "/api/projects",
        "/api/projects/{project_id}",
        "/api/images/{image_id}/embedding",
        "/api/images/{image_id}/decode",
    ):
        assert path in schema["paths"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert served.client.get("/healthz").json() == {"status": "ok"}
    assert served.client.get("/readyz").status_code == 200


def test_logout_revokes_at_once_and_other_revocations_within_the_cache_time(
    served: Served,
) -> None:
    from segany.server.auth import issue_token, revoke_tokens

    login = served.client.post("/api/login", json={"name": "ann", "password": "password"})
    assert login.status_code == 200
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    assert served.client.get("/api/me", headers=headers).json()["name"] == "ann"
    assert served.client.post("/api/logout", headers=headers).status_code == 204
    assert served.client.get("/api/me", headers=headers).status_code == 401
    # revoked elsewhere (the CLI): believed for at most token_cache_s more
    served.app.state.tokens.ttl_s = 0.3
    with served.db.session() as session:
        from segany.server.tables import User

        ann = session.query(User).filter_by(name="ann").one()
        token = issue_token(session, ann).token
    headers = {"Authorization": f"Bearer {token}"}
    assert served.client.get("/api/me", headers=headers).status_code == 200
    with served.db.session() as session:
        revoke_tokens(session, session.query(User).filter_by(name="ann").one(), token)
    import time

    time.sleep(0.35)
    assert served.client.get("/api/me", headers=headers).status_code == 401


def test_pages_are_cross_origin_isolated_for_wasm_threads(served: Served) -> None:
    for path in ("/login", "/healthz", "/api/projects"):
        answer = served.client.get(path, headers=served.auth())
        assert answer.headers["cross-origin-opener-policy"] == "same-origin"
        assert answer.headers["cross-origin-embedder-policy"] == "require-corp"
