"""Connected components and small-region removal against OpenCV and the official code."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from segment_anything.utils import amg  # type: ignore[import-untyped]

from segany.errors import InputError
from segany.everything.regions import connected_components, remove_small_regions


def _masks() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    masks = []
    for height, width in [(1, 1), (1, 9), (9, 1), (2, 2), (5, 7), (31, 17), (64, 64), (120, 250)]:
        for density in (0.05, 0.3, 0.55, 0.8, 0.97):
            masks.append(rng.random((height, width)) < density)
    yy, xx = np.mgrid[0:150, 0:220]
    blob = np.hypot(yy - 70, xx - 100) < 50
    speckled = blob ^ (rng.random(blob.shape) < 0.03)
    masks += [blob, speckled, ~speckled, np.zeros((20, 30), bool), np.ones((20, 30), bool)]
    # bounding boxes at the borders, spanning the image, leaving small outside parts
    near_full = np.ones((40, 50), bool)
    near_full[:3, :4] = False  # small unset corner: a "hole" touching the border
    near_full[20:22, 30:33] = False
    band = np.zeros((40, 50), bool)
    band[10:30, :] = True  # spans the width: unset rows above and below, not connected
    band[15, 5:8] = False
    column = np.zeros((40, 50), bool)
    column[:, 45:48] = True  # spans the height, right side: small part on the right
    corner = np.zeros((40, 50), bool)
    corner[30:, 40:] = True
    corner[35, 45] = False
    frame = np.ones((40, 50), bool)
    frame[5:35, 5:45] = False  # a large hole inside a ring
    frame[1, 1] = False
    masks += [near_full, band, column, corner, frame, ~band, ~column, ~corner]
    big = np.hypot(*np.mgrid[-300:300, -400:400]) < 250
    masks.append(big ^ (rng.random(big.shape) < 0.002))
    ties = np.zeros((12, 12), bool)
    ties[1:3, 1:3] = ties[6:8, 8:10] = ties[9:11, 2:4] = True  # three islands of equal size
    masks.append(ties)
    return masks


@pytest.mark.parametrize("index", range(len(_masks())))
def test_components_equal_opencv(index: int) -> None:
    mask = _masks()[index]
    n_labels, labels, sizes = connected_components(mask)
    n_cv, labels_cv, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    assert n_labels == n_cv
    assert np.array_equal(labels, labels_cv)
    assert np.array_equal(sizes, stats[:, cv2.CC_STAT_AREA])


@pytest.mark.parametrize("index", range(len(_masks())))
@pytest.mark.parametrize("mode", ["holes", "islands"])
@pytest.mark.parametrize("area", [1, 3, 10, 100, 10**6])
def test_remove_small_regions_equals_official(index: int, mode: str, area: int) -> None:
    mask = _masks()[index]
    ours, changed = remove_small_regions(mask, area, mode)  # type: ignore[arg-type]
    official, official_changed = amg.remove_small_regions(mask, area, mode)
    assert changed == official_changed
    assert ours.dtype == bool
    assert np.array_equal(ours, official)


def test_remove_small_regions_checks_mode() -> None:
    with pytest.raises(InputError):
        remove_small_regions(np.zeros((3, 3), bool), 10, "both")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        connected_components(np.zeros(3, bool))
