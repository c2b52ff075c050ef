"""Tests of segany.data.polygons: masks to COCO polygons (holes kept) and back via pycocotools."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segany.data.polygons import join_polygons, mask_to_polygons, polygons_to_mask
from segany.errors import InputError

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def _round_trip(mask: np.ndarray, **kw: float) -> np.ndarray:
    return polygons_to_mask(mask_to_polygons(mask, **kw), *mask.shape)


def _ring(size: int = 64, inner: float = 10, outer: float = 25) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    radius = np.hypot(yy - size / 2 + 0.5, xx - size / 2 + 0.5)
    return (radius < outer) & (radius > inner)


def _blob(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    noise = cv2.GaussianBlur(rng.random((size, size)), (0, 0), sigma)
    return noise > np.median(noise)


def test_a_ring_keeps_its_hole_in_one_polygon() -> None:
    ring = _ring()
    polygons = mask_to_polygons(ring)
    assert len(polygons) == 1  # the hole is spliced in, not a ring of its own
    back = polygons_to_mask(polygons, *ring.shape)
    assert not back[32, 32]  # the hole's centre
    assert not back[~ring].any()
    assert _iou(back, ring) >= 0.9
    assert np.array_equal(back, ring)  # exact, in fact (see test_random_masks_are_exact)


def test_disjoint_parts_are_all_kept() -> None:
    mask = np.zeros((40, 50), dtype=bool)
    mask[5:15, 5:15] = True
    mask[20:35, 30:48] = True
    polygons = mask_to_polygons(mask)
    assert len(polygons) == 2
    assert polygons[0] == [30.0, 20.0, 30.0, 35.0, 48.0, 35.0, 48.0, 20.0]  # largest first
    assert np.array_equal(polygons_to_mask(polygons, 40, 50), mask)


def test_one_pixel_parts_are_unit_squares_on_pixel_corners() -> None:
    mask = np.zeros((8, 9), dtype=bool)
    mask[3, 4] = True
    mask[0, 0] = True  # in a corner of the image
    mask[7, 8] = True
    polygons = mask_to_polygons(mask)
    assert len(polygons) == 3
    assert [4.0, 3.0, 4.0, 4.0, 5.0, 4.0, 5.0, 3.0] in polygons  # pixel (4, 3) = [4, 5]x[3, 4]
    assert np.array_equal(polygons_to_mask(polygons, 8, 9), mask)


def test_coordinates_are_pixel_corners_matching_the_coco_bbox() -> None:
    mask = np.zeros((20, 20), dtype=bool)
    mask[5:15, 3:8] = True  # bbox x=3, y=5, w=5, h=10
    (polygon,) = mask_to_polygons(mask)
    xs, ys = polygon[0::2], polygon[1::2]
    assert (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)) == (3, 5, 5, 10)


def test_diagonal_contacts_holes_and_islands_round_trip() -> None:
    checker = np.indices((6, 6)).sum(axis=0) % 2 == 0  # parts touching only at corners
    nested = _ring(48, 8, 20) | _ring(48, 0, 4)  # an island inside the hole
    corner_hole = np.ones((5, 5), dtype=bool)
    corner_hole[2, 2] = corner_hole[1, 1] = False  # two holes touching at a corner
    for mask in (checker, nested, corner_hole, np.ones((7, 3), dtype=bool)):
        assert np.array_equal(_round_trip(mask), mask)


def test_random_masks_are_exact() -> None:
    """Pixel-corner outlines are axis-parallel, and pycocotools rasterises those exactly:
    the floor for any mask (salt-and-pepper noise, hundreds of holes) is IoU 1."""
    rng = np.random.default_rng(0)
    masks = [rng.random((int(h), int(w))) < p for h, w in rng.integers(1, 40, (12, 2))
             for p in (0.2, 0.5, 0.8)]  # fmt: skip
    masks += [_blob(rng, 96, 4) for _ in range(5)]
    masks.append(rng.random((150, 150)) < 0.5)
    for mask in masks:
        assert np.array_equal(_round_trip(mask), mask)


def test_simplification_stays_close() -> None:
    """Douglas-Peucker at 1 px on smooth blobs: measured IoU >= 0.936 at sigma 2 (min of
    20), 0.960 at sigma 4, 0.975 at sigma 8; the floor leaves a little slack."""
    rng = np.random.default_rng(1)
    for _ in range(5):
        blob = _blob(rng, 80, 4)
        simplified = mask_to_polygons(blob, tolerance=1.0)
        assert sum(map(len, simplified)) < sum(map(len, mask_to_polygons(blob)))
        assert _iou(polygons_to_mask(simplified, 80, 80), blob) >= 0.93


def test_join_makes_one_ring_with_the_same_pixels() -> None:
    mask = _ring(40, 5, 12)
    mask[0:3, 0:3] = True
    mask[35:, 30:] = True
    ring = join_polygons(mask_to_polygons(mask))
    assert np.array_equal(polygons_to_mask([ring], 40, 40), mask)
    assert join_polygons([]) == []


def test_empty_and_degenerate_input() -> None:
    assert mask_to_polygons(np.zeros((5, 5), dtype=bool)) == []
    assert not polygons_to_mask([], 4, 6).any()
    assert polygons_to_mask([], 4, 6).shape == (4, 6)
    # pycocotools would read a 4-number polygon as a box; it has no area, so it is skipped
    box_like = polygons_to_mask([[1, 1, 3, 3], [0, 0, 2, 0, 2, 2, 0, 2]], 4, 4)
    assert box_like.sum() == 4
    repeated = polygons_to_mask([[0, 0, 0, 0, 2, 0, 2, 2, 2, 2, 0, 2, 0, 0]], 4, 4)
    assert np.array_equal(repeated, box_like)


def test_bad_input_is_refused() -> None:
    with pytest.raises(InputError, match="HxW"):
        mask_to_polygons(np.zeros((2, 3, 4), dtype=bool))
    with pytest.raises(InputError, match="tolerance"):
        mask_to_polygons(np.ones((3, 3)), tolerance=-1)
    with pytest.raises(InputError, match="polygon 1 .* even number"):
        polygons_to_mask([[0, 0, 2, 0, 2, 2], [0, 0, 1, 1, 1]], 4, 4)
    with pytest.raises(InputError, match="polygon 0 is not a list of numbers"):
        polygons_to_mask([["a", "b", "c", "d", "e", "f"]], 4, 4)
    with pytest.raises(InputError, match="finite"):
        polygons_to_mask([[0, 0, 2, 0, float("nan"), 2]], 4, 4)
    with pytest.raises(InputError, match="positive size"):
        polygons_to_mask([], 0, 4)
