"""Tests of segany.visualize: mask overlays and atomic PNG writing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segany.errors import InputError
from segany.visualize import PALETTE, overlay_masks, save_png

H, W = 120, 160
GREY = 100


def _image() -> np.ndarray:
    return np.full((H, W, 3), GREY, dtype=np.uint8)


def _rect_mask(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _blend(colour: tuple[int, int, int], alpha: float) -> np.ndarray:
    return np.rint(GREY * (1 - alpha) + np.asarray(colour) * alpha).astype(np.uint8)


# ------------------------------------------------------------------------ overlay_masks


def test_overlay_paints_masks_in_palette_colours() -> None:
    image = _image()
    before = image.copy()
    masks = np.stack([_rect_mask(10, 50, 10, 60), _rect_mask(60, 110, 80, 150)])
    out = overlay_masks(image, masks, alpha=0.5)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(image, before)  # input untouched
    np.testing.assert_array_equal(out[30, 30], _blend(PALETTE[0], 0.5))
    np.testing.assert_array_equal(out[85, 115], _blend(PALETTE[1], 0.5))
    assert not np.array_equal(out[30, 30], out[85, 115])
    np.testing.assert_array_equal(out[5, 155], (GREY, GREY, GREY))  # background unchanged


def test_overlay_outlines_are_darker() -> None:
    out = overlay_masks(_image(), _rect_mask(10, 50, 10, 60)[None], alpha=0.5)
    edge, inside = out[10, 30].astype(int), out[30, 30].astype(int)
    np.testing.assert_array_equal(edge, np.rint(np.asarray(PALETTE[0]) * 0.55))
    assert edge.sum() < inside.sum()


def test_mask_touching_the_border_has_no_outline_along_it() -> None:
    out = overlay_masks(_image(), _rect_mask(0, 50, 0, 60)[None], alpha=0.5)
    np.testing.assert_array_equal(out[0, 30], _blend(PALETTE[0], 0.5))
    np.testing.assert_array_equal(out[49, 30], np.rint(np.asarray(PALETTE[0]) * 0.55))


def test_alpha_zero_leaves_interior_unchanged() -> None:
    out = overlay_masks(_image(), _rect_mask(10, 50, 10, 60), alpha=0.0)
    np.testing.assert_array_equal(out[30, 30], (GREY, GREY, GREY))


def test_no_masks_returns_a_copy_of_the_image() -> None:
    image = _image()
    out = overlay_masks(image, np.zeros((0, H, W), dtype=bool))
    np.testing.assert_array_equal(out, image)
    assert not np.shares_memory(out, image)


def test_integer_masks_and_grayscale_image_are_accepted() -> None:
    gray = np.full((H, W), GREY, dtype=np.uint8)
    out = overlay_masks(gray, _rect_mask(10, 50, 10, 60).astype(np.uint8) * 255)
    np.testing.assert_array_equal(out[30, 30], _blend(PALETTE[0], 0.5))


def test_points_are_drawn_green_and_red() -> None:
    points = np.array([[40.0, 40.0], [120.0, 80.0]])
    out = overlay_masks(_image(), np.zeros((0, H, W), bool), points=points, labels=np.array([1, 0]))
    pos, neg = out[40, 40].astype(int), out[80, 120].astype(int)
    assert pos[1] > 150 and pos[0] < 50 and pos[2] < 120
    assert neg[0] > 200 and neg[1] < 60 and neg[2] < 60
    # a white edge surrounds the star
    ring = out[20:60, 20:60].reshape(-1, 3)
    assert (ring == 255).all(axis=1).any()


def test_points_without_labels_are_positive() -> None:
    out = overlay_masks(_image(), np.zeros((0, H, W), bool), points=np.array([[40, 40]]))
    assert out[40, 40, 1] > 150 and out[40, 40, 0] < 50


def test_boxes_are_drawn_as_rectangles() -> None:
    boxes = np.array([[20, 30, 100, 90], [110, 10, 150, 50]])
    out = overlay_masks(_image(), np.zeros((0, H, W), bool), boxes=boxes)
    np.testing.assert_array_equal(out[30, 60], PALETTE[0])  # top edge of box 0
    np.testing.assert_array_equal(out[60, 20], PALETTE[0])  # left edge of box 0
    np.testing.assert_array_equal(out[10, 130], PALETTE[1])  # top edge of box 1
    np.testing.assert_array_equal(out[60, 60], (GREY, GREY, GREY))  # inside untouched


def test_single_box_and_inverted_corners() -> None:
    out = overlay_masks(_image(), np.zeros((0, H, W), bool), boxes=np.array([100, 90, 20, 30]))
    np.testing.assert_array_equal(out[30, 60], PALETTE[0])


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"masks": np.zeros((1, H, W + 1), bool)}, "NxHxW"),
        ({"masks": np.zeros((1, H, W), np.float32)}, "boolean"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"points": np.zeros((2, 3))}, "Nx2"),
        ({"points": np.array([[np.nan, 1.0]])}, "finite"),
        ({"points": np.zeros((2, 2)), "labels": np.array([1])}, "one entry per point"),
        ({"points": np.zeros((1, 2)), "labels": np.array([2])}, "1 \\(positive\\)"),
        ({"labels": np.array([1])}, "without points"),
        ({"boxes": np.zeros((1, 3))}, "Bx4"),
        ({"boxes": np.array([0, 0, np.inf, 1])}, "finite"),
    ],
)
def test_overlay_rejects_bad_arguments(kwargs: dict[str, object], expected: str) -> None:
    args: dict[str, object] = {"masks": np.zeros((1, H, W), bool), **kwargs}
    with pytest.raises(InputError, match=expected):
        overlay_masks(_image(), **args)  # type: ignore[arg-type]


def test_overlay_rejects_bad_image() -> None:
    with pytest.raises(InputError, match="uint8"):
        overlay_masks(np.zeros((H, W, 3), np.float32), np.zeros((1, H, W), bool))


# ----------------------------------------------------------------------------- save_png


def test_save_bool_mask_as_0_255(tmp_path: Path) -> None:
    mask = _rect_mask(10, 20, 30, 40)
    path = save_png(mask, tmp_path / "m.png")
    with Image.open(path) as im:
        assert im.mode == "L" and im.size == (W, H)
        arr = np.asarray(im)
    assert set(np.unique(arr)) == {0, 255}
    np.testing.assert_array_equal(arr == 255, mask)


@pytest.mark.parametrize(("channels", "mode"), [(3, "RGB"), (4, "RGBA")])
def test_save_colour_roundtrip(tmp_path: Path, channels: int, mode: str) -> None:
    arr = np.random.default_rng(1).integers(0, 256, (H, W, channels), dtype=np.uint8)
    path = save_png(arr, str(tmp_path / "c.png"))
    with Image.open(path) as im:
        assert im.mode == mode
        np.testing.assert_array_equal(np.asarray(im), arr)


def test_save_grayscale_uint8(tmp_path: Path) -> None:
    arr = np.arange(H * W, dtype=np.uint32).reshape(H, W).astype(np.uint8)
    with Image.open(save_png(arr, tmp_path / "g.png")) as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), arr)


def test_save_replaces_atomically_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "o.png"
    target.write_bytes(b"old")
    save_png(_image(), target)
    with Image.open(target) as im:
        assert im.size == (W, H)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]


def test_saved_file_has_ordinary_permissions(tmp_path: Path) -> None:
    reference = tmp_path / "ref.txt"
    reference.write_text("x")
    path = save_png(_image(), tmp_path / "p.png")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode)


@pytest.mark.parametrize(
    "arr",
    [
        np.zeros((H, W), np.float32),
        np.zeros((H, W, 2), np.uint8),
        np.zeros((H, W, 3), bool),
        np.zeros((0, W), bool),
    ],
)
def test_save_rejects_unsupported_arrays(tmp_path: Path, arr: np.ndarray) -> None:
    with pytest.raises(InputError):
        save_png(arr, tmp_path / "bad.png")
    assert list(tmp_path.iterdir()) == []


def test_save_into_missing_directory_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        save_png(_image(), tmp_path / "missing" / "x.png")
    assert os.listdir(tmp_path) == []
