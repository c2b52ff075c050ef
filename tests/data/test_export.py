"""Tests of segany.data.export: writing datasets as COCO, SA-1B, YOLO-seg and PNG maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segany.data.coco import COCO_CATEGORIES, read_coco_file
from segany.data.dataset import Dataset, DatasetImage, annotation_from_mask
from segany.data.export import FORMATS, image_stems, write_dataset
from segany.data.polygons import polygons_to_mask
from segany.data.sa1b import read_sa1b_folder
from segany.errors import InputError

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

CATEGORIES = tuple(c for c in COCO_CATEGORIES if c["name"] in ("person", "dog", "cup"))


def _masks() -> list[np.ndarray]:
    """On a 32x48 image: a ring with a hole, a square lying on it, a two-part object."""
    yy, xx = np.mgrid[:32, :48]
    radius = np.hypot(yy - 16, xx - 16)
    ring = (radius < 14) & (radius > 5)
    square = np.zeros((32, 48), dtype=bool)
    square[4:10, 10:16] = True  # overlaps the ring
    parts = np.zeros((32, 48), dtype=bool)
    parts[2:6, 36:46] = parts[24:31, 34:47] = True
    return [ring, square, parts]


def make_dataset() -> Dataset:
    ring, square, parts = _masks()
    lone = np.zeros((16, 16), dtype=bool)
    lone[5:9, 6:8] = True
    prompts = {"prompts": {"points": [[16.5, 4.5, 1], {"x": 20, "y": 3, "label": 0}, "junk"]}}
    return Dataset(
        images=(
            DatasetImage(1, "a/photo.jpg", 48, 32),
            DatasetImage(2, "b/photo.jpg", 16, 16),
            DatasetImage(3, "../../evil.png", 16, 16),
            DatasetImage(4, "..", 16, 16),
        ),
        annotations=(
            annotation_from_mask(10, 1, 18, ring, predicted_iou=0.9, extra=prompts),
            annotation_from_mask(11, 1, 47, square),
            annotation_from_mask(12, 1, 1, parts),
            annotation_from_mask(13, 3, 47, lone, stability_score=0.8),
            annotation_from_mask(14, 3, 1, np.zeros((16, 16), dtype=bool)),  # empty
        ),
        categories=CATEGORIES,
    )


def _images(tmp_path: Path) -> dict[int, Path]:
    """Real image files for the dataset, in a folder apart from the export."""
    folder = tmp_path / "originals"
    folder.mkdir()
    paths = {}
    for image in make_dataset().images:
        path = folder / f"{image.id}.png"
        Image.fromarray(np.full((image.height, image.width, 3), image.id, np.uint8)).save(path)
        paths[image.id] = path
    return paths


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_image_stems_are_safe_and_unique() -> None:
    images = [
        DatasetImage(1, "a/photo.jpg", 1, 1),
        DatasetImage(2, "b\\Photo.png", 1, 1),  # a clash, case-insensitively
        DatasetImage(3, "../../evil.png", 1, 1),
        DatasetImage(4, "..", 1, 1),
        DatasetImage(5, "", 1, 1),
        DatasetImage(6, "bad\x00\nname.tif", 1, 1),
        DatasetImage(7, ".hidden.jpg", 1, 1),
        DatasetImage(8, "photo_1.jpg", 1, 1),  # the name the first clash gets
        DatasetImage(9, "x" * 400 + ".jpg", 1, 1),
    ]
    stems = image_stems(images)
    assert stems[1] == "photo_1" and stems[2] == "Photo_2" and stems[8] == "photo_1_2"
    assert stems[3] == "evil" and stems[4] == "image_4" and stems[5] == "image_5"
    assert stems[6] == "bad__name" and stems[7] == "hidden"
    assert len(stems[9].encode()) <= 180
    assert len({s.casefold() for s in stems.values()}) == len(images)


def test_unknown_format_and_wrong_targets(tmp_path: Path) -> None:
    dataset = make_dataset()
    with pytest.raises(InputError, match="choose one of coco, sa1b, yolo, png"):
        write_dataset(dataset, "voc", tmp_path / "x")
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="is not a folder"):
        write_dataset(dataset, "yolo", tmp_path / "file")
    with pytest.raises(InputError, match="is a folder"):
        write_dataset(dataset, "coco", tmp_path)
    with pytest.raises(InputError, match=r"image 1 \(a/photo.jpg\): .* is not a file"):
        write_dataset(dataset, "sa1b", tmp_path / "s", image_path=lambda im: tmp_path / "none")
    assert FORMATS == ("coco", "sa1b", "yolo", "png")


def test_coco(tmp_path: Path) -> None:
    dataset = make_dataset()
    path = write_dataset(dataset, "coco", tmp_path / "out" / "coco.json", segmentation="polygon")
    assert path == tmp_path / "out" / "coco.json"
    assert read_coco_file(path) == dataset


def test_sa1b(tmp_path: Path) -> None:
    dataset = make_dataset()
    paths = _images(tmp_path)
    out = write_dataset(dataset, "sa1b", tmp_path / "sa1b", image_path=lambda im: paths[im.id])
    names = ["evil", "image_4", "photo_1", "photo_2"]
    assert _files(out) == sorted([f"{n}.json" for n in names] + [f"{n}.png" for n in names])
    assert _files(tmp_path / "originals") == ["1.png", "2.png", "3.png", "4.png"]
    record = json.loads((out / "photo_1.json").read_text())
    assert record["image"] == {"image_id": 1, "file_name": "photo_1.png", "width": 48, "height": 32}
    first = record["annotations"][0]
    assert first["point_coords"] == [[16.5, 4.5], [20.0, 3.0]]
    assert first["crop_box"] == [0, 0, 48, 32] and first["category_id"] == 18
    assert first["predicted_iou"] == 0.9 and first["stability_score"] is None
    read = {ann[0]["id"] if ann else None: (image, ann) for image, ann in read_sa1b_folder(out)}
    image, annotations = read[10]
    assert image[0, 0, 0] == 1  # the copy of image 1
    for ann, mask in zip(annotations, _masks(), strict=True):
        assert np.array_equal(ann["segmentation"], mask)
        assert ann["point_coords"] == ([] if ann["id"] != 10 else first["point_coords"])


def test_yolo(tmp_path: Path) -> None:
    dataset = make_dataset()
    paths = _images(tmp_path)
    out = write_dataset(dataset, "yolo", tmp_path / "yolo", image_path=lambda im: paths[im.id])
    names = ["evil", "image_4", "photo_1", "photo_2"]
    assert _files(out) == sorted(
        ["data.yaml"] + [f"labels/{n}.txt" for n in names] + [f"images/{n}.png" for n in names]
    )
    lines = (out / "labels" / "photo_1.txt").read_text().splitlines()
    assert len(lines) == 3  # one line per object, the two-part one included
    for line, mask, class_index in zip(lines, _masks(), [1, 2, 0], strict=True):
        fields = line.split()
        assert int(fields[0]) == class_index  # dog, cup, person in CATEGORIES' order
        coords = np.array(fields[1:], dtype=float)
        assert coords.size % 2 == 0 and coords.size >= 6
        assert coords.min() >= 0 and coords.max() <= 1
        pixels = (coords.reshape(-1, 2) * (48, 32)).ravel().tolist()
        assert np.array_equal(polygons_to_mask([pixels], 32, 48), mask)  # holes included
    assert len((out / "labels" / "evil.txt").read_text().splitlines()) == 1  # empty mask skipped
    assert (out / "labels" / "photo_2.txt").read_text() == ""
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "person", 1: "dog", 2: "cup"}
    assert data["train"] == "images" and Path(data["path"]) == out.resolve()


def test_png(tmp_path: Path) -> None:
    dataset = make_dataset()
    out = write_dataset(dataset, "png", tmp_path / "png")
    assert _files(out) == [
        "evil.png",
        "image_4.png",
        "instances.json",
        "photo_1.png",
        "photo_2.png",
    ]
    values = np.array(Image.open(out / "photo_1.png")).astype(np.int64)
    assert values.shape == (32, 48)
    ring, square, parts = _masks()
    assert np.array_equal(values == 2, square)  # the smaller mask is painted over the ring
    assert np.array_equal(values == 1, ring & ~square)
    assert np.array_equal(values == 3, parts)
    assert np.array_equal(values == 0, ~(ring | square | parts))
    instances = json.loads((out / "instances.json").read_text())
    assert instances["photo_1.png"][1] == {
        "value": 2, "annotation_id": 11, "category_id": 47, "category": "cup",
    }  # fmt: skip
    assert [i["annotation_id"] for i in instances["evil.png"]] == [13, 14]
    assert instances["photo_2.png"] == [] and not np.array(Image.open(out / "photo_2.png")).any()


def test_hostile_names_stay_inside_the_folder(tmp_path: Path) -> None:
    dataset = make_dataset()
    paths = _images(tmp_path)
    box = tmp_path / "box"
    for fmt in ("sa1b", "yolo", "png"):
        write_dataset(dataset, fmt, box / "out" / fmt, image_path=lambda im: paths[im.id])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["box", "originals"]
    assert [p.name for p in box.iterdir()] == ["out"]
    assert not any(p.name.startswith("evil") for p in (box / "out").iterdir())
