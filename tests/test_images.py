"""Tests of segany.data.images.load_image: files, Pillow images and arrays."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segany.data import MAX_IMAGE_PIXELS, load_image
from segany.errors import InputError

ORIENTATION = 0x0112  # EXIF tag


def _check_rgb(arr: np.ndarray, shape: tuple[int, int]) -> None:
    assert arr.shape == (*shape, 3)
    assert arr.dtype == np.uint8
    assert arr.flags.c_contiguous


def _png_header_only(path: Path, width: int, height: int, bit_depth: int = 8) -> Path:
    """Write a PNG whose IHDR claims ``width x height`` but which holds no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def _noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------ arrays


def test_rgb_uint8_array_is_returned_without_copy() -> None:
    arr = _noise(5, 7)
    out = load_image(arr)
    _check_rgb(out, (5, 7))
    assert np.shares_memory(out, arr)
    np.testing.assert_array_equal(out, arr)


def test_non_contiguous_array_becomes_contiguous() -> None:
    arr = _noise(6, 8)[:, ::2]
    out = load_image(arr)
    _check_rgb(out, (6, 4))
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 1)])
def test_grayscale_array_is_stacked(shape: tuple[int, ...]) -> None:
    arr = np.arange(20, dtype=np.uint8).reshape(shape)
    out = load_image(arr)
    _check_rgb(out, (4, 5))
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], arr.reshape(4, 5))


def test_rgba_array_drops_alpha() -> None:
    arr = np.dstack([_noise(3, 4), np.zeros((3, 4), np.uint8)])
    out = load_image(arr)
    _check_rgb(out, (3, 4))
    np.testing.assert_array_equal(out, arr[:, :, :3])


@pytest.mark.parametrize(
    ("arr", "expected"),
    [
        (np.zeros((4, 4), dtype=bool), "bool"),
        (np.zeros((4, 4, 3), dtype=np.float32), r"\(img \* 255\)\.astype\(np\.uint8\)"),
        (np.zeros((4, 4, 3), dtype=np.float64), "ambiguous"),
        (np.zeros((4, 4, 3), dtype=np.int64), "uint8"),
        (np.zeros((4, 4, 3), dtype=np.uint16), "uint8"),
        (np.zeros((0, 4, 3), dtype=np.uint8), "empty"),
        (np.zeros((4, 0), dtype=np.uint8), "empty"),
        (np.zeros(12, dtype=np.uint8), "HxW"),
        (np.zeros((2, 4, 4, 3), dtype=np.uint8), "HxW"),
        (np.zeros((4, 4, 2), dtype=np.uint8), "channels"),
        (np.zeros((3, 16, 16), dtype=np.uint8), r"transpose\(1, 2, 0\)"),
    ],
)
def test_bad_arrays_are_refused(arr: np.ndarray, expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        load_image(arr)


def test_unsupported_type_is_refused() -> None:
    with pytest.raises(InputError, match="list"):
        load_image([[1, 2], [3, 4]])  # type: ignore[arg-type]


# ------------------------------------------------------------------------ Pillow images


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "1", "CMYK", "YCbCr", "HSV"])
def test_pil_modes_convert_to_rgb(mode: str) -> None:
    im = Image.new("RGB", (6, 4), (10, 200, 30)).convert(mode)
    out = load_image(im)
    _check_rgb(out, (4, 6))


def test_rgba_alpha_is_dropped_keeping_stored_colour() -> None:
    arr = np.zeros((2, 2, 4), np.uint8)
    arr[0, 0] = (200, 100, 50, 0)  # fully transparent, colour kept
    arr[1, 1] = (1, 2, 3, 255)
    out = load_image(Image.fromarray(arr, mode="RGBA"))
    np.testing.assert_array_equal(out[0, 0], (200, 100, 50))
    np.testing.assert_array_equal(out[1, 1], (1, 2, 3))


def test_palette_image_uses_palette_colours() -> None:
    im = Image.new("P", (3, 2))
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    im.putpixel((1, 0), 1)
    im.putpixel((2, 1), 2)
    out = load_image(im)
    np.testing.assert_array_equal(out[0, 1], (255, 0, 0))
    np.testing.assert_array_equal(out[1, 2], (0, 0, 255))
    np.testing.assert_array_equal(out[0, 0], (0, 0, 0))


def test_float_mode_f_is_scaled() -> None:
    im = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), mode="F")
    out = load_image(im)
    np.testing.assert_array_equal(out[0, :, 0], (0, 128, 255))


def test_int32_mode_i_with_16bit_values_is_scaled() -> None:
    im = Image.fromarray(np.array([[0, 257 * 100, 65535]], dtype=np.int32), mode="I")
    np.testing.assert_array_equal(load_image(im)[0, :, 1], (0, 100, 255))
    small = Image.fromarray(np.array([[0, 7, 255]], dtype=np.int32), mode="I")
    np.testing.assert_array_equal(load_image(small)[0, :, 2], (0, 7, 255))


def test_zero_size_pil_image_is_refused() -> None:
    with pytest.raises(InputError, match="zero size"):
        load_image(Image.new("RGB", (0, 4)))


def test_pil_image_over_limit_is_refused_before_decoding() -> None:
    with pytest.raises(InputError, match="decompression bomb"):
        load_image(Image.new("L", (100, 100)), max_pixels=9_999)


# -------------------------------------------------------------------------------- files


def test_png_roundtrip(tmp_path: Path) -> None:
    arr = _noise(9, 11)
    path = tmp_path / "a.png"
    Image.fromarray(arr).save(path)
    out = load_image(path)
    _check_rgb(out, (9, 11))
    np.testing.assert_array_equal(out, arr)
    np.testing.assert_array_equal(load_image(str(path)), arr)


def test_16bit_grayscale_png_is_scaled_to_8_bits(tmp_path: Path) -> None:
    values = np.array([[0, 257, 257 * 128, 65535], [1000, 30000, 60000, 65534]], np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # really stored and read as 16-bit
    out = load_image(path)
    _check_rgb(out, (2, 4))
    expected = np.rint(values / 257.0).astype(np.uint8)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], expected)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "1"])
def test_png_modes(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"{mode}.png"
    Image.new("RGB", (5, 3), (255, 255, 255)).convert(mode).save(path)
    out = load_image(path)
    _check_rgb(out, (3, 5))
    assert (out == 255).all()


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path)
    out = load_image(path)
    _check_rgb(out, (8, 8))
    assert out[4, 4, 0] > 200 and out[4, 4, 1] < 60 and out[4, 4, 2] < 60  # red


def _oriented_jpeg(path: Path, orientation: int) -> Path:
    """A 40x20 (WxH) JPEG, white with a red 10x10 block at the stored top-left corner."""
    im = Image.new("RGB", (40, 20), (255, 255, 255))
    im.paste((255, 0, 0), (0, 0, 10, 10))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    im.save(path, exif=exif, quality=95)
    return path


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = _oriented_jpeg(tmp_path / "rot.jpg", 6)  # displayed rotated 90 degrees clockwise
    out = load_image(path)
    _check_rgb(out, (40, 20))  # height and width swapped
    # Rotating clockwise brings the stored top-left corner to the top-right.
    assert out[2:8, 12:18, 0].min() > 200 and out[2:8, 12:18, 1].max() < 60
    assert out[2:8, 2:8].min() > 200  # top-left is white now


def test_exif_orientation_is_applied_to_pil_images(tmp_path: Path) -> None:
    path = _oriented_jpeg(tmp_path / "rot.jpg", 6)
    with Image.open(path) as im:
        out = load_image(im)
    _check_rgb(out, (40, 20))


def test_no_orientation_keeps_layout(tmp_path: Path) -> None:
    out = load_image(_oriented_jpeg(tmp_path / "up.jpg", 1))
    _check_rgb(out, (20, 40))
    assert out[2:8, 2:8, 1].max() < 60  # red block still top-left


def test_decompression_bomb_small_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("1", (3000, 3000)).save(path)  # 9 megapixels in about a kilobyte
    assert path.stat().st_size < 10_000
    with pytest.raises(InputError, match="decompression bomb") as info:
        load_image(path, max_pixels=1_000_000)
    assert str(path) in str(info.value)
    assert load_image(path, max_pixels=None).shape == (3000, 3000, 3)


def test_default_limit_is_checked_on_the_header(tmp_path: Path) -> None:
    # 20000 x 20000 = 400 megapixels > MAX_IMAGE_PIXELS; the file holds no pixel data, so
    # only a header check can produce this error (decoding would fail as truncated).
    assert MAX_IMAGE_PIXELS < 20_000 * 20_000
    path = _png_header_only(tmp_path / "huge.png", 20_000, 20_000)
    with pytest.raises(InputError, match="too large|decompression bomb") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_pillow_bomb_warning_does_not_leak(tmp_path: Path) -> None:
    # 10000 x 10000 lies in Pillow's warning range (above Image.MAX_IMAGE_PIXELS, below
    # twice that); our limit decides and Pillow's warning is not shown.
    path = _png_header_only(tmp_path / "big.png", 10_000, 10_000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InputError, match="decompression bomb"):
            load_image(path, max_pixels=50_000_000)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_is_refused(tmp_path: Path, fmt: str) -> None:
    buffer = io.BytesIO()
    Image.fromarray(_noise(64, 64)).save(buffer, format=fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(InputError, match="truncated or corrupt") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_text_file_named_png_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    with pytest.raises(InputError, match="not an image") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.touch()
    with pytest.raises(InputError, match="empty") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="directory") as info:
        load_image(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nope.png"
    with pytest.raises(InputError, match="does not exist") as info:
        load_image(str(path))
    assert str(path) in str(info.value)


def test_zero_size_png_is_refused(tmp_path: Path) -> None:
    path = _png_header_only(tmp_path / "zero.png", 0, 5)
    with pytest.raises(InputError) as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_messages_are_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(InputError) as info:
        load_image(path)
    assert "\n" not in str(info.value)
