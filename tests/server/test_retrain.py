"""``segany train --from-project``: the active version fine-tuned on a project's accepted
annotations, stored in the data dir and registered as the next version; and its refusals
(exit 2, one line)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from segany.data.rle import mask_to_rle
from segany.data.scenes import generate_scene
from segany.loading import cached_path
from segany.registry import get_spec
from segany.server import editing, store, versions
from segany.server.config import ServerConfig
from segany.server.database import open_database
from segany.server.editing import AnnotationInput
from segany.server.retrain import fine_tune_config, project_records
from segany.server.tables import User
from segany.server.weights_store import load_version
from segany.weights import load_state_dict_file, sha256_file
from tests.server.test_cli_server import error_line, run

Capture = pytest.CaptureFixture[str]
SCENES = (3, 4, 5)
MASKS_PER_SCENE = 3
#: two cheap steps: one image of two prompts, the decoder alone, first prompts only
CHEAP = {"trainable": "decoder", "clicks": 0, "log_every": 1}


def _coco(folder: Path) -> Path:
    """Generated scenes as PNGs, and a COCO file of MASKS_PER_SCENE masks of each."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for number, seed in enumerate(SCENES, start=1):
        scene = generate_scene(seed)
        Image.fromarray(scene.image).save(folder / f"scene{number}.png")
        height, width = scene.image.shape[:2]
        images.append({"id": number, "file_name": f"scene{number}.png", "width": width,
                       "height": height})  # fmt: skip
        for mask in scene.masks[:MASKS_PER_SCENE]:
            ys, xs = np.nonzero(mask)
            box = [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1]
            annotations.append({"id": len(annotations) + 1, "image_id": number,
                                "category_id": 1, "segmentation": mask_to_rle(mask),
                                "area": int(mask.sum()), "bbox": box, "iscrowd": 0})  # fmt: skip
    path = folder / "coco.json"
    categories = [{"id": 1, "name": "person"}]
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": categories}))  # fmt: skip
    return path


@pytest.fixture
def data(tmp_path: Path, capsys: Capture) -> Path:
    """Project 1: three scenes with accepted masks; project 2: an image with only a
    proposed mask."""
    folder, pictures = tmp_path / "data", tmp_path / "pictures"
    pictures.mkdir()
    coco = _coco(pictures)
    for argv in (
        ["user", "add", "ann"],
        ["project", "create", "p", "--owner", "ann"],
        ["project", "import", "1", pictures, "--coco", coco],
        ["project", "create", "empty", "--owner", "ann"],
        ["project", "import", "2", pictures / "scene1.png"],
    ):
        status, _, err = run(capsys, *argv, "--data", folder)
        assert status == 0, (argv, err)
    db = open_database(ServerConfig(data_dir=folder).database_url)
    with db.session() as session:
        project = store.get_project(session, None, 2)
        image = store.list_images(session, project)[0]
        proposed = AnnotationInput(image_id=image.id, category_id=1, status="proposed",
                                   rle=mask_to_rle(generate_scene(3).masks[0]))  # fmt: skip
        editing.create_annotation(session, session.get_one(User, 1), project, proposed)
    db.close()
    return folder


def _train(capsys: Capture, data: Path, out: Path, *more: object) -> tuple[int, str, str]:
    settings = out.parent / "cheap.json"
    settings.write_text(json.dumps(CHEAP))
    return run(capsys, "train", "--from-project", 1, "--data", data, "-o", out, "--steps", 2,
               "--images-per-step", 1, "--prompts-per-image", 2, "--config", settings,
               "--quiet", *more)  # fmt: skip


def test_train_from_project_registers_a_version(
    data: Path, tmp_path: Path, capsys: Capture
) -> None:
    config = ServerConfig(data_dir=data)
    records = project_records(open_database(config.database_url), config, 1)
    assert [len(r.masks) for r in records] == [MASKS_PER_SCENE] * len(SCENES)
    bundled = get_spec("segany_shapes").weights
    assert bundled is not None

    status, out, err = _train(capsys, data, tmp_path / "run", "--activate")
    assert status == 0, err
    summary = json.loads(out)
    assert (summary["version"], summary["parent"], summary["active"]) == ("v2", "v1", True)
    assert (summary["images"], summary["masks"]) == (len(SCENES), len(SCENES) * MASKS_PER_SCENE)
    assert summary["metrics"]["step"] == 2 and np.isfinite(summary["metrics"]["loss"])
    run_weights = tmp_path / "run" / "model.safetensors"
    assert summary["weights_sha256"] == sha256_file(run_weights)
    assert "registered v2 (active), trained from v1 on 9 masks of 3 images" in err

    db = open_database(config.database_url)
    with db.read() as session:
        v1, v2 = versions.list_versions(session)
    db.close()
    assert (v1.path, v1.weights_sha256, v1.active) == (None, bundled.sha256, False)
    assert (v2.parent_sha256, v2.project_id, v2.active) == (bundled.sha256, 1, True)
    assert v2.path == f"models/weights/{v2.weights_sha256}.safetensors"
    assert sha256_file(data / v2.path) == v2.weights_sha256
    assert v2.metrics is not None and v2.metrics["steps"] == 2 and v2.metrics["masks"] == 9
    model, path = load_version(config, v2)  # what a server loads: the run's weights
    assert path == data / v2.path
    trained = load_state_dict_file(run_weights)
    assert all(model.state_dict()[k].equal(v) for k, v in trained.items())
    # the decoder learnt, the frozen encoder did not
    bundled_file = cached_path(get_spec("segany_shapes"))
    assert bundled_file is not None
    start = load_state_dict_file(bundled_file)
    assert any(not start[k].equal(v) for k, v in trained.items() if k.startswith("mask_decoder"))
    assert all(start[k].equal(v) for k, v in trained.items() if k.startswith("image_encoder"))


def test_train_from_project_refusals(data: Path, tmp_path: Path, capsys: Capture) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"trainable": "bogus"}))
    out = tmp_path / "r"
    for argv, words in (
        (["--from-project", 9, "-o", out, "--data", data], "no project 9"),
        (["--from-project", 2, "-o", out, "--data", data], "no accepted annotations"),
        (["--from-project", 0, "-o", out, "--data", data], "must be at least 1, got 0"),
        (["--from-project", 1, "--data", data], "required: -o/--out"),
        (["--from-project", 1, "-o", out, "--resume", "--data", data], "--resume does not go"),
        (["--from-project", 1, "-o", out, "--init", bad, "--data", data], "--init does not go"),
        (["--from-project", 1, "-o", out, "--config", bad, "--data", data], "trainable must be"),
        (["-o", out, "--activate", "--data", data], "--activate, --data: only with"),
    ):
        status, _, err = run(capsys, "train", *argv)
        assert status == 2, (argv, err)
        assert words in error_line(err), (argv, err)
    assert not out.exists()
    config = ServerConfig(data_dir=data)
    with pytest.raises(Exception, match="lr must be positive"):
        fine_tune_config("segany_shapes", {"lr": -1.0})
    db = open_database(config.database_url)
    with db.read() as session:
        assert [v.label for v in versions.list_versions(session)] in ([], ["v1"])
    db.close()
