"""Object-aware SegEvery with a real Ultralytics YOLO detector (the ``yolo`` extra).

No YOLO weights can be downloaded here, so the detector is YOLOv8n built from its own
architecture file with random weights and saved as a checkpoint, as a user's would be: its
confidences are tiny, so the tests lower ``conf`` to see boxes at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import segany
from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
from segany.everything import MaskGenerator
from segany.everything.sources import YoloBoxes, box_source


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("yolo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("YOLO_CONFIG_DIR", str(folder))  # keep its settings file out of $HOME
        patch.setenv("YOLO_OFFLINE", "1")
        from ultralytics import YOLO

        path = folder / "yolov8n_random.pt"
        YOLO("yolov8n.yaml").save(str(path))
    return path


@pytest.fixture(scope="module")
def scene() -> Any:
    return SceneDataset(1, EVAL_BASE_SEED)[0]


def test_yolo_boxes_from_a_real_checkpoint(checkpoint: Path, scene: Any) -> None:
    source = YoloBoxes(checkpoint, conf=1e-4, max_det=25)
    height, width = scene.image.shape[:2]
    boxes = source(scene.image, None, None)  # type: ignore[arg-type]
    assert boxes.shape == (25, 4)
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
    assert (boxes[:, 0::2] <= width - 1).all() and (boxes[:, 1::2] <= height - 1).all()
    # MobileSAMv2's border snapping: no side within 20 px of the border stays off it
    assert not ((boxes[:, :2] > 0) & (boxes[:, :2] < 20)).any()
    assert not ((boxes[:, 2] < width - 1) & (boxes[:, 2] > width - 1 - 20)).any()
    assert not ((boxes[:, 3] < height - 1) & (boxes[:, 3] > height - 1 - 20)).any()
    # the defaults (conf 0.4) keep none of a random detector's boxes
    assert len(box_source(f"yolo:{checkpoint}")(scene.image, None, None)) == 0  # type: ignore[arg-type]


def test_generator_and_cli_with_yolo_prompts(checkpoint: Path, scene: Any, tmp_path: Path) -> None:
    model = segany.load_model("segany_shapes")
    source = YoloBoxes(checkpoint, conf=1e-4, max_det=4)
    records = MaskGenerator(model, strategy="objects", prompts=source).generate(scene.image)
    assert len(records) == 4 * 3  # three masks per box, unfiltered
    assert all(len(r["prompt_box"]) == 4 for r in records)

    from segany.cli.main import main

    Image.fromarray(scene.image).save(tmp_path / "scene.png")
    out = tmp_path / "out"
    argv = ["everything", str(tmp_path / "scene.png"), "-o", str(out), "--strategy", "objects",
            "--prompts", f"yolo:{checkpoint}", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((out / "scene.json").read_text())["annotations"] == []  # conf 0.4


def test_an_unreadable_image_stays_a_clear_error_after_ultralytics(
    checkpoint: Path, tmp_path: Path
) -> None:
    """Ultralytics replaces ``PIL.Image.open`` with a wrapper that, on a file Pillow cannot
    identify, tries to pip-install a HEIF plugin; segany keeps using Pillow's own."""
    from PIL import Image as PILImage

    from segany.data.images import load_image
    from segany.errors import InputError

    assert PILImage.open.__module__ != "PIL.Image"  # ultralytics is imported and patched it
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(InputError, match="not an image"):
        load_image(bad)
