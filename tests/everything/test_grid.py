"""Point grids and crop boxes: exactly the official layout (segment_anything.utils.amg)."""

from __future__ import annotations

import numpy as np
import pytest
from segment_anything.utils import amg  # type: ignore[import-untyped]

from segany.errors import InputError
from segany.everything.grid import (
    build_all_layer_point_grids,
    build_point_grid,
    crop_boxes_for_image,
)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 32, 33, 64])
def test_point_grid_equals_official(n: int) -> None:
    ours = build_point_grid(n)
    assert ours.shape == (n * n, 2)
    assert np.array_equal(ours, amg.build_point_grid(n))


@pytest.mark.parametrize(("n", "layers", "scale"), [(32, 0, 1), (32, 2, 2), (10, 3, 2), (9, 2, 3)])
def test_layer_grids_equal_official(n: int, layers: int, scale: int) -> None:
    ours = build_all_layer_point_grids(n, layers, scale)
    official = amg.build_all_layer_point_grids(n, layers, scale)
    assert len(ours) == len(official) == layers + 1
    for a, b in zip(ours, official, strict=True):
        assert np.array_equal(a, b)


def test_layer_without_points_is_refused() -> None:
    with pytest.raises(InputError, match="no points"):
        build_all_layer_point_grids(4, 3, 2)  # layer 3: int(4 / 8) = 0
    with pytest.raises(InputError):
        build_point_grid(0)


@pytest.mark.parametrize(
    "size", [(1, 1), (17, 5), (200, 300), (300, 200), (1500, 2250), (513, 512)]
)
@pytest.mark.parametrize("layers", [0, 1, 2, 3])
@pytest.mark.parametrize("ratio", [0.0, 512 / 1500, 0.5, 0.9])
def test_crop_boxes_equal_official(size: tuple[int, int], layers: int, ratio: float) -> None:
    boxes, layer_ids = crop_boxes_for_image(size, layers, ratio)
    official_boxes, official_layers = amg.generate_crop_boxes(size, layers, ratio)
    assert boxes == official_boxes
    assert layer_ids == official_layers
    height, width = size
    if min(size) >= 64:  # (tiny images get empty and even inverted crops, as officially)
        for x0, y0, x1, y1 in boxes:
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
