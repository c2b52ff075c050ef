"""Tests of segany.data.sa1b: writing generated scenes as SA-1B folders and reading them back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from segany.data import SceneConfig, generate_scene, read_sa1b_folder, write_sa1b_folder
from segany.errors import InputError

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

CONFIG = SceneConfig(min_size=64, max_size=128, part_probability=0.8, min_area=30)
SEEDS = [11, 3, 250]


def test_round_trip(tmp_path: Path) -> None:
    written = write_sa1b_folder(tmp_path / "out", SEEDS, CONFIG)
    assert [p.name for p in written] == [f"scene_{seed}.json" for seed in SEEDS]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [f"scene_{s}.json" for s in SEEDS] + [f"scene_{s}.png" for s in SEEDS]
    )
    records = {}
    for path in written:
        record = json.loads(path.read_text())
        records[record["image"]["seed"]] = record
    read = list(read_sa1b_folder(tmp_path / "out"))
    assert len(read) == len(SEEDS)
    # Files are read in name order: scene_11, scene_250, scene_3.
    for (image, decoded), seed in zip(read, sorted(SEEDS, key=str), strict=True):
        scene = generate_scene(seed, CONFIG)
        record = records[seed]
        assert record["image"]["image_id"] == SEEDS.index(seed)
        assert record["image"]["file_name"] == f"scene_{seed}.png"
        assert (record["image"]["height"], record["image"]["width"]) == scene.image.shape[:2]
        np.testing.assert_array_equal(image, scene.image)  # PNG keeps pixels exact
        assert len(decoded) == len(scene)
        ids = [a["id"] for a in decoded]
        for index, (annotation, stored) in enumerate(
            zip(decoded, record["annotations"], strict=True)
        ):
            np.testing.assert_array_equal(annotation["segmentation"], scene.masks[index])
            assert isinstance(stored["segmentation"]["counts"], str)
            rle = dict(stored["segmentation"])
            np.testing.assert_array_equal(coco_mask.decode(rle).astype(bool), scene.masks[index])
            assert annotation["bbox"] == coco_mask.toBbox(rle).tolist()
            assert annotation["area"] == int(coco_mask.area(rle)) == scene.areas[index]
            assert annotation["kind"] == scene.kinds[index]
            parent = int(scene.parent[index])
            assert annotation["parent_id"] == (ids[parent] if parent >= 0 else None)
    all_ids = [a["id"] for r in records.values() for a in r["annotations"]]
    assert sorted(all_ids) == list(range(1, len(all_ids) + 1)), "ids unique in the folder"
    assert any(a["parent_id"] is not None for r in records.values() for a in r["annotations"])


def test_reader_accepts_jpeg_and_plain_sa1b_records(tmp_path: Path) -> None:
    mask = np.zeros((20, 30), dtype=bool)
    mask[5:9, 10:25] = True
    Image.fromarray(np.full((20, 30, 3), 90, dtype=np.uint8)).save(tmp_path / "sa_1.jpg")
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    record = {
        "image": {"image_id": 1, "file_name": "sa_1.jpg", "width": 30, "height": 20},
        "annotations": [
            {"id": 7, "segmentation": {"size": [20, 30], "counts": rle["counts"].decode()},
             "bbox": [10.0, 5.0, 15.0, 4.0], "area": 60, "predicted_iou": 0.9},
        ],
    }  # fmt: skip
    (tmp_path / "sa_1.json").write_text(json.dumps(record))
    ((image, decoded),) = list(read_sa1b_folder(tmp_path))
    assert image.shape == (20, 30, 3)
    np.testing.assert_array_equal(decoded[0]["segmentation"], mask)
    assert decoded[0]["predicted_iou"] == 0.9


def test_reader_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        list(read_sa1b_folder(tmp_path / "missing"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read"):
        list(read_sa1b_folder(tmp_path))
    (tmp_path / "bad.json").write_text(json.dumps({"annotations": []}))
    with pytest.raises(InputError, match="not an SA-1B annotation file"):
        list(read_sa1b_folder(tmp_path))
    (tmp_path / "bad.json").unlink()
    write_sa1b_folder(tmp_path, [4], SceneConfig(size=(40, 50)))
    Image.fromarray(np.zeros((10, 10, 3), dtype=np.uint8)).save(tmp_path / "scene_4.png")
    with pytest.raises(InputError, match="says its image is 40x50"):
        list(read_sa1b_folder(tmp_path))


def test_writer_refuses_a_file_as_folder(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        write_sa1b_folder(target, [0])
