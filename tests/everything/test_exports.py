"""Exports of segment-everything records: SA-1B, COCO instances and label maps.

Round trips go through pycocotools, the reference decoder of COCO RLE.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from segany.data.rle import mask_to_rle
from segany.errors import InputError
from segany.everything import MaskGenerator
from segany.everything.exports import (
    coco_instances,
    label_map,
    overlay,
    paint_order,
    sa1b_dict,
    to_coco_rle,
)
from segany.models import build_sam
from tests.helpers import TINY

H, W = 20, 30


def _masks() -> list[np.ndarray]:
    """A large mask, a small one inside it, and a separate one (not overlapping)."""
    big = np.zeros((H, W), dtype=bool)
    big[2:18, 2:20] = True
    small = np.zeros((H, W), dtype=bool)
    small[5:9, 6:11] = True
    other = np.zeros((H, W), dtype=bool)
    other[10:19, 22:29] = True
    other[0, 29] = True
    return [small, big, other]


def _record(mask: np.ndarray, mode: str, i: int) -> dict[str, Any]:
    ys, xs = np.nonzero(mask)
    segmentation: Any = mask
    if mode == "uncompressed_rle":
        segmentation = mask_to_rle(mask, compressed=False)
    elif mode == "coco_rle":
        segmentation = mask_to_rle(mask)
    return {
        "segmentation": segmentation,
        "area": int(mask.sum()),
        "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min()), int(ys.max() - ys.min())],
        "predicted_iou": 0.9 - 0.1 * i,
        "point_coords": [[float(xs.mean()), float(ys.mean())]],
        "stability_score": 0.95,
        "crop_box": [0, 0, W, H],
    }


@pytest.mark.parametrize("mode", ["binary_mask", "uncompressed_rle", "coco_rle"])
def test_sa1b_round_trip_through_pycocotools(mode: str) -> None:
    masks = _masks()
    records = [_record(m, mode, i) for i, m in enumerate(masks)]
    data = sa1b_dict(records, image_id=7, file_name="a/b.png", width=W, height=H)
    data = json.loads(json.dumps(data))  # plain JSON types only
    assert data["image"] == {"image_id": 7, "file_name": "a/b.png", "width": W, "height": H}
    assert [a["id"] for a in data["annotations"]] == [1, 2, 3]
    for ann, mask, record in zip(data["annotations"], masks, records, strict=True):
        rle = ann["segmentation"]
        assert isinstance(rle["counts"], str)
        decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        np.testing.assert_array_equal(decoded.astype(bool), mask)
        assert ann["area"] == int(mask.sum())
        assert ann["bbox"] == record["bbox"]
        assert set(ann) == {
            "id", "segmentation", "bbox", "area", "predicted_iou",
            "stability_score", "crop_box", "point_coords",
        }  # fmt: skip


def test_to_coco_rle_equals_pycocotools_encode() -> None:
    mask = _masks()[2]
    ours = to_coco_rle(mask)
    theirs = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert ours["counts"] == theirs["counts"].decode()
    assert to_coco_rle(theirs) == ours  # bytes counts accepted
    with pytest.raises(InputError):
        to_coco_rle({"counts": "abc"})


def test_sa1b_rejects_mask_of_wrong_size() -> None:
    record = _record(_masks()[0], "coco_rle", 0)
    with pytest.raises(InputError, match="size"):
        sa1b_dict([record], image_id=1, file_name="x.png", width=W + 1, height=H)


def test_coco_instances_load_in_pycocotools(tmp_path: Path) -> None:
    masks = _masks()
    first = sa1b_dict(
        [_record(m, "coco_rle", i) for i, m in enumerate(masks)],
        image_id=1, file_name="one.png", width=W, height=H,
    )  # fmt: skip
    second = sa1b_dict(
        [_record(masks[2], "binary_mask", 0)], image_id=2, file_name="two.png", width=W, height=H
    )
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco_instances([first, second])))
    coco = COCO(str(path))
    assert coco.getCatIds() == [1]
    assert coco.loadCats(1)[0]["name"] == "object"
    assert sorted(coco.getImgIds()) == [1, 2]
    anns = coco.loadAnns(coco.getAnnIds())
    assert sorted(a["id"] for a in anns) == [1, 2, 3, 4]
    expected = [*masks, masks[2]]
    for ann in sorted(anns, key=lambda a: a["id"]):
        assert ann["iscrowd"] == 0 and ann["category_id"] == 1
        assert ann["score"] == ann["predicted_iou"]
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), expected[ann["id"] - 1])
    assert [a["image_id"] for a in sorted(anns, key=lambda a: a["id"])] == [1, 1, 1, 2]
    with pytest.raises(InputError, match="twice"):
        coco_instances([first, first])


def test_label_map_paints_larger_masks_first() -> None:
    small, big, other = _masks()
    data = sa1b_dict(
        [_record(m, "coco_rle", i) for i, m in enumerate([small, big, other])],
        image_id=1, file_name="x.png", width=W, height=H,
    )  # fmt: skip
    anns = data["annotations"]
    assert paint_order(anns) == [1, 2, 0]
    labels = label_map(anns, H, W)
    assert labels.dtype == np.uint16
    np.testing.assert_array_equal(labels == 1, small)  # the smaller mask stays visible
    np.testing.assert_array_equal(labels == 2, big & ~small)
    np.testing.assert_array_equal(labels == 3, other)
    np.testing.assert_array_equal(labels == 0, ~(small | big | other))
    assert label_map([], H, W).sum() == 0

    image = np.full((H, W, 3), 100, dtype=np.uint8)
    painted = overlay(image, anns)
    assert painted.shape == (H, W, 3) and painted.dtype == np.uint8
    assert (painted[small] != 100).any() and (painted[~(small | big | other)] == 100).all()


def test_real_generator_records_export() -> None:
    torch.manual_seed(0)
    generator = MaskGenerator(
        build_sam(TINY),
        points_per_side=3,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
        output_mode="binary_mask",
    )
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    records = generator.generate(image)
    data = json.loads(
        json.dumps(sa1b_dict(records, image_id=1, file_name="r.png", width=32, height=24))
    )
    assert len(data["annotations"]) == len(records)
    for ann, record in zip(data["annotations"], records, strict=True):
        rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode())
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), record["segmentation"])
        assert ann["area"] == int(mask_utils.area(rle))
