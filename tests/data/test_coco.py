"""Tests of segany.data.dataset and segany.data.coco: records, COCO documents and files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO

from segany.data.coco import (
    COCO_CATEGORIES,
    coco_document,
    read_coco,
    read_coco_file,
    write_coco_file,
)
from segany.data.dataset import Dataset, DatasetImage, annotation_from_mask
from segany.data.rle import mask_to_rle
from segany.errors import InputError

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

CATEGORIES = tuple(c for c in COCO_CATEGORIES if c["name"] in ("person", "dog", "cup"))


def _masks() -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[:40, :60]
    radius = np.hypot(yy - 20, xx - 30)
    ring = (radius < 15) & (radius > 6)
    parts = np.zeros((40, 60), dtype=bool)
    parts[2:8, 3:9] = parts[30:38, 45:58] = True
    pixel = np.zeros((30, 20), dtype=bool)
    pixel[29, 0] = True
    return {"ring": ring, "parts": parts, "pixel": pixel}


def make_dataset() -> Dataset:
    """Two images: a ring with a hole and a two-part object on one, a lone pixel on the
    other; provenance on some annotations, none on others."""
    masks = _masks()
    extra = {
        "stage": "click",
        "prompts": {"points": [[30.5, 9.5, 1], [30.0, 20.0, 0]]},
        "model": "vit_b",
        "weights_sha256": "ab" * 32,
    }
    return Dataset(
        images=(
            DatasetImage(id=3, file_name="scenes/a.jpg", width=60, height=40),
            DatasetImage(id=8, file_name="b.png", width=20, height=30),
        ),
        annotations=(
            annotation_from_mask(
                1, 3, 18, masks["ring"], predicted_iou=0.93, stability_score=0.97, extra=extra
            ),
            annotation_from_mask(2, 3, 1, masks["parts"]),
            annotation_from_mask(5, 8, 47, masks["pixel"], predicted_iou=0.5, extra={"x": None}),
        ),
        categories=CATEGORIES,
    )


def _json_round_trip(document: dict[str, Any]) -> Any:
    return json.loads(json.dumps(document))


def test_coco_categories() -> None:
    assert len(COCO_CATEGORIES) == 80
    ids = [c["id"] for c in COCO_CATEGORIES]
    assert ids == sorted(set(ids)) and ids[0] == 1 and ids[-1] == 90
    by_name = {c["name"]: c for c in COCO_CATEGORIES}
    assert by_name["stop sign"]["id"] == 13 and by_name["dining table"]["id"] == 67
    assert by_name["hair drier"] == {"id": 89, "name": "hair drier", "supercategory": "indoor"}
    assert set(ids).isdisjoint({12, 26, 29, 30, 45, 66, 68, 69, 71, 83})


def test_annotation_from_mask_agrees_with_pycocotools() -> None:
    for mask in _masks().values():
        ann = annotation_from_mask(1, 1, 1, mask)
        assert np.array_equal(coco_mask.decode(ann.rle), mask)  # str counts are accepted
        ours = {"size": ann.rle["size"], "counts": ann.rle["counts"].encode()}
        assert list(coco_mask.toBbox(ours)) == list(ann.bbox)
        assert int(coco_mask.area(ours)) == ann.area == mask.sum()
    empty = annotation_from_mask(1, 1, 1, np.zeros((4, 4)))
    assert empty.bbox == (0, 0, 0, 0) and empty.area == 0


def test_rle_round_trip_is_exact() -> None:
    dataset = make_dataset()
    document = coco_document(dataset)
    assert read_coco(_json_round_trip(document)) == dataset
    first = document["annotations"][0]
    assert first["iscrowd"] == 0 and first["score"] == first["predicted_iou"] == 0.93
    assert first["stability_score"] == 0.97
    assert first["segany"]["prompts"]["points"][0] == [30.5, 9.5, 1]
    assert "score" not in document["annotations"][1]
    assert [im["id"] for im in document["images"]] == [3, 8]


def test_polygon_round_trip_keeps_the_hole() -> None:
    dataset = make_dataset()
    document = _json_round_trip(coco_document(dataset, segmentation="polygon"))
    ring, parts, pixel = document["annotations"]
    assert all(isinstance(p, list) for p in ring["segmentation"])
    assert len(ring["segmentation"]) == 1 and len(parts["segmentation"]) == 2
    back = read_coco(document)
    assert back == dataset  # the outlines are exact, so even the RLE strings agree
    assert not back.annotations[0].mask()[20, 30]  # the hole's centre


def test_pycocotools_reads_our_files(tmp_path: Path) -> None:
    dataset = make_dataset()
    for segmentation in ("rle", "polygon"):
        path = write_coco_file(
            dataset, tmp_path / f"{segmentation}.json", segmentation=segmentation
        )
        coco = COCO(str(path))
        for ann in dataset.annotations:
            assert np.array_equal(coco.annToMask(coco.anns[ann.id]), ann.mask())


def test_read_uncompressed_rle_and_polygons() -> None:
    mask = _masks()["ring"]
    document = {
        "images": [{"id": 1, "file_name": "x.jpg", "width": 60, "height": 40}],
        "categories": [{"id": 7, "name": "thing"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "iscrowd": 1,
             "segmentation": mask_to_rle(mask, compressed=False)},
            {"id": 2, "image_id": 1, "category_id": 7, "area": 15.6, "bbox": [2, 2, 4.5, 4],
             "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]], "score": 0.25},
        ],
    }  # fmt: skip
    crowd, square = read_coco(document).annotations
    assert crowd.rle == mask_to_rle(mask)  # now compressed, with str counts
    assert crowd.area == mask.sum() and crowd.bbox == annotation_from_mask(1, 1, 1, mask).bbox
    assert crowd.predicted_iou is None and crowd.extra == {}
    expected = np.zeros((40, 60), dtype=bool)
    expected[2:6, 2:6] = True  # corners 2..6 cover pixels 2..5
    assert np.array_equal(square.mask(), expected)
    assert square.area == 16 and square.bbox == (2, 2, 4.5, 4)  # the file's own values
    assert square.predicted_iou == 0.25  # from "score"


def _bad(document: dict[str, Any], change: Any) -> dict[str, Any]:
    bad = copy.deepcopy(document)
    change(bad)
    return bad


BAD_DOCUMENTS = [
    ("no images", lambda d: d.pop("images"), "needs a list of images; 'images' is missing"),
    ("annotations a dict", lambda d: d.update(annotations={}), "'annotations' is a dict"),
    ("annotation not an object", lambda d: d["annotations"].append(3), r"annotations\[3\] is"),
    ("unknown image", lambda d: d["annotations"][1].update(image_id=99),
     "annotation 2 refers to image 99, which the file does not have"),
    ("unknown category", lambda d: d["annotations"][2].update(category_id=2),
     "annotation 5 has category 2, which the file's 'categories' do not list"),
    ("size mismatch", lambda d: d["annotations"][2]["segmentation"].update(size=[20, 30]),
     r"annotation 5 has a mask of size \[20, 30\] \(HxW\), but image 8 \(b.png\) is 30x20"),
    ("counts mismatch", lambda d: d["annotations"][0]["segmentation"].update(counts="0"),
     "annotation 1 has RLE counts adding up to 0 pixels"),
    ("bad counts", lambda d: d["annotations"][0]["segmentation"].update(counts="\x7f"),
     "annotation 1: invalid character"),
    ("odd polygon", lambda d: d["annotations"][0].update(segmentation=[[1, 2, 3, 4, 5]]),
     "annotation 1: polygon 0 must be a flat list"),
    ("segmentation a string", lambda d: d["annotations"][0].update(segmentation="abc"),
     "annotation 1 has a segmentation that is neither"),
    ("no segmentation", lambda d: d["annotations"][0].pop("segmentation"),
     "annotation 1 has no 'segmentation'"),
    ("twice the same image", lambda d: d["images"].append(dict(d["images"][0])),
     "image id 3 occurs twice"),
    ("twice the same annotation", lambda d: d["annotations"][1].update(id=1),
     "annotation id 1 occurs twice"),
    ("image without width", lambda d: d["images"][1].pop("width"), "image 8 has no 'width'"),
    ("fractional height", lambda d: d["images"][1].update(height=2.5),
     "the height of image 8 must be an integer"),
    ("category without name", lambda d: d["categories"][0].pop("name"), r"categories\[0\] needs"),
    ("segany not an object", lambda d: d["annotations"][0].update(segany=[1]),
     "annotation 1 has a 'segany' value that is not an object"),
    ("bad bbox", lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "annotation 1 has a bbox"),
    ("nan score", lambda d: d["annotations"][0].update(predicted_iou=float("nan")),
     "the score of annotation 1 must be a finite number"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "change", "message"), BAD_DOCUMENTS, ids=[b[0] for b in BAD_DOCUMENTS]
)
def test_bad_documents_are_refused_with_a_useful_message(
    name: str, change: Any, message: str
) -> None:
    document = _json_round_trip(coco_document(make_dataset()))
    with pytest.raises(InputError, match=message):
        read_coco(_bad(document, change))
    with pytest.raises(InputError, match="must hold a JSON object with 'images'"):
        read_coco([document])


def test_missing_annotations_mean_no_masks() -> None:
    document = _json_round_trip(coco_document(make_dataset()))
    del document["annotations"]
    assert read_coco(document).annotations == ()


def test_files_are_written_atomically_and_read_back(tmp_path: Path) -> None:
    dataset = make_dataset()
    path = write_coco_file(dataset, tmp_path / "deep" / "coco.json")
    assert read_coco_file(path) == dataset
    assert sorted(p.name for p in path.parent.iterdir()) == ["coco.json"]  # no temp file left
    info = {"description": "project 7"}
    write_coco_file(dataset, path, info=info)  # overwrites
    assert json.loads(path.read_text())["info"] == info
    with pytest.raises(InputError, match="is a folder"):
        write_coco_file(dataset, tmp_path)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match="broken.json is not valid JSON"):
        read_coco_file(tmp_path / "broken.json")
    bad = json.loads(path.read_text())
    bad["annotations"][0]["image_id"] = 99
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(InputError, match=r"bad.json: annotation 1 refers to image 99"):
        read_coco_file(tmp_path / "bad.json")
    with pytest.raises(InputError, match="cannot read"):
        read_coco_file(tmp_path / "missing.json")


def test_unwritable_extra_and_bad_segmentation_kind(tmp_path: Path) -> None:
    dataset = make_dataset()
    with pytest.raises(InputError, match="segmentation must be"):
        coco_document(dataset, segmentation="mask")  # type: ignore[arg-type]
    ann = annotation_from_mask(9, 8, 1, np.ones((30, 20)), extra={"when": object()})
    odd = Dataset(dataset.images, (ann,), dataset.categories)
    with pytest.raises(InputError, match="cannot be written as JSON"):
        write_coco_file(odd, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_dataset_checks_itself() -> None:
    good = make_dataset()
    wrong_size = annotation_from_mask(9, 8, 1, np.ones((20, 30)))
    with pytest.raises(InputError, match=r"annotation 9 has a mask of size \[20, 30\]"):
        Dataset(good.images, (wrong_size,), good.categories)
    with pytest.raises(InputError, match="refers to image 4"):
        Dataset(good.images, (annotation_from_mask(9, 4, 1, np.ones((30, 20))),), CATEGORIES)
    with pytest.raises(InputError, match="category 2, which is not among"):
        Dataset(good.images, (annotation_from_mask(9, 8, 2, np.ones((30, 20))),), CATEGORIES)
    with pytest.raises(InputError, match="annotation id 1 occurs twice"):
        Dataset(good.images, good.annotations[:1] * 2, CATEGORIES)
    with pytest.raises(InputError, match="image id 3 occurs twice"):
        Dataset(good.images[:1] * 2, (), CATEGORIES)
    with pytest.raises(InputError, match="category id 1 occurs twice"):
        Dataset(good.images, (), CATEGORIES[:1] * 2)
    with pytest.raises(InputError, match="both must be positive"):
        Dataset((DatasetImage(1, "a", 0, 5),), (), ())
    as_lists = Dataset(list(good.images), list(good.annotations), list(CATEGORIES))
    assert as_lists == good
    assert good.annotations_by_image() == {3: list(good.annotations[:2]), 8: [good.annotations[2]]}
    assert good.category_names() == {1: "person", 18: "dog", 47: "cup"}
