"""Tests of segany.data.rle: our COCO RLE against pycocotools, and its error handling."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from segany.data.rle import (
    decode_counts,
    encode_counts,
    mask_to_rle,
    rle_area,
    rle_box_area,
    rle_to_mask,
)
from segany.errors import InputError

# pycocotools' decode passes copy=False to np.array, which NumPy 2 warns about.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _coco(mask: np.ndarray) -> dict:
    return coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))


def _cases() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases: list[tuple[str, np.ndarray]] = []
    for height, width in [(1, 1), (1, 7), (9, 1), (3, 5), (17, 31), (64, 48), (101, 257)]:
        for density in (0.02, 0.5, 0.97):
            mask = rng.random((height, width)) < density
            cases.append((f"random {height}x{width} p={density}", mask))
    blocky = np.kron(rng.random((12, 9)) < 0.4, np.ones((23, 41), dtype=bool))
    cases.append(("blocks 276x369 (long runs)", blocky))
    for height, width in [(1, 1), (7, 13), (480, 640)]:
        cases.append((f"empty {height}x{width}", np.zeros((height, width), dtype=bool)))
        cases.append((f"full {height}x{width}", np.ones((height, width), dtype=bool)))
    for y, x in [(0, 0), (0, 639), (479, 0), (479, 639), (240, 321)]:
        single = np.zeros((480, 640), dtype=bool)
        single[y, x] = True
        cases.append((f"single pixel at {y},{x}", single))
    sparse = np.zeros((1000, 1500), dtype=bool)  # huge runs and large negative deltas
    sparse[[3, 500, 999], [0, 700, 1499]] = True
    sparse[10:900, 1200:1210] = True
    cases.append(("sparse 1000x1500", sparse))
    return cases


CASES = _cases()


@pytest.mark.parametrize(("name", "mask"), CASES, ids=[name for name, _ in CASES])
def test_encode_matches_pycocotools(name: str, mask: np.ndarray) -> None:
    ours = mask_to_rle(mask)
    theirs = _coco(mask)
    assert ours["size"] == list(theirs["size"])
    assert isinstance(ours["counts"], str)
    assert ours["counts"] == theirs["counts"].decode("utf-8")
    assert rle_area(ours) == int(coco_mask.area(theirs)) == int(mask.sum())


@pytest.mark.parametrize(("name", "mask"), CASES, ids=[name for name, _ in CASES])
def test_decode_both_ways(name: str, mask: np.ndarray) -> None:
    theirs = _coco(mask)
    from_theirs = rle_to_mask(theirs)  # bytes counts, as pycocotools returns them
    assert from_theirs.dtype == bool and from_theirs.flags.c_contiguous
    np.testing.assert_array_equal(from_theirs, mask)
    ours = mask_to_rle(mask)
    decoded_by_coco = coco_mask.decode({"size": ours["size"], "counts": ours["counts"]})
    np.testing.assert_array_equal(decoded_by_coco.astype(bool), mask)
    np.testing.assert_array_equal(rle_to_mask(ours), mask)


@pytest.mark.parametrize(("name", "mask"), CASES[::3], ids=[name for name, _ in CASES[::3]])
def test_uncompressed_counts(name: str, mask: np.ndarray) -> None:
    plain = mask_to_rle(mask, compressed=False)
    assert isinstance(plain["counts"], list)
    assert sum(plain["counts"]) == mask.size
    if mask.ravel(order="F")[0]:
        assert plain["counts"][0] == 0  # runs start with 0s, so a set first pixel gives 0
    np.testing.assert_array_equal(rle_to_mask(plain), mask)
    height, width = mask.shape
    via_coco = coco_mask.frPyObjects(plain, height, width)  # uncompressed -> compressed
    assert via_coco["counts"].decode("utf-8") == mask_to_rle(mask)["counts"]
    assert decode_counts(encode_counts(plain["counts"])) == plain["counts"]


def test_non_bool_masks_count_nonzero_as_set() -> None:
    values = np.array([[0, 2, 0], [255, 0, 1]], dtype=np.uint8)
    assert mask_to_rle(values) == mask_to_rle(values != 0)


def test_zero_sized_mask() -> None:
    rle = mask_to_rle(np.zeros((0, 5), dtype=bool))
    assert rle == {"size": [0, 5], "counts": ""}
    assert rle_to_mask(rle).shape == (0, 5)


@pytest.mark.parametrize(
    ("rle", "match"),
    [
        ({"size": [2, 2], "counts": [1, 2]}, "add up to 3"),
        ({"size": [2, 2], "counts": [4, -1, 1]}, "negative"),
        ({"size": [2, 2], "counts": "0 "}, "invalid character"),
        ({"size": [2, 2], "counts": "0P"}, "middle of a value"),
        ({"counts": "04"}, "size"),
        ({"size": [2, 2]}, "counts"),
    ],
)
def test_bad_rle_raises_input_error(rle: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        rle_to_mask(rle)


def test_mask_must_be_two_dimensional() -> None:
    with pytest.raises(InputError, match="HxW"):
        mask_to_rle(np.zeros((2, 3, 4), dtype=bool))


@pytest.mark.parametrize(("name", "mask"), CASES, ids=[name for name, _ in CASES])
def test_box_and_area_from_runs_match_pycocotools(name: str, mask: np.ndarray) -> None:
    box, area = rle_box_area(mask_to_rle(mask))
    encoded = _coco(mask)
    assert area == int(coco_mask.area(encoded)) == int(mask.sum())
    assert list(box) == [float(v) for v in coco_mask.toBbox(encoded)]
