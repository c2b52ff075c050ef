"""Loading images from files, Pillow images and NumPy arrays into one canonical form.

Every image that enters segany goes through :func:`load_image`, which returns an
``HxWx3`` ``uint8`` RGB array in C order, or raises :class:`~segany.errors.InputError`
with one sentence that names the offending file or array.

Files are opened with Pillow. The header is inspected *before* any pixel data is decoded,
so an image whose header claims more than ``max_pixels`` pixels (a "decompression bomb":
a few kilobytes of PNG that would expand to gigabytes) is refused without allocating its
pixel buffer.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from segany.errors import InputError

__all__ = ["MAX_IMAGE_PIXELS", "load_image", "pillow_open"]

#: Default pixel limit of :func:`load_image`: the number of pixels above which Pillow
#: itself raises ``DecompressionBombError`` (twice ``PIL.Image.MAX_IMAGE_PIXELS``), about
#: 13,400 x 13,400 pixels. Decoding such an image takes about 537 MB as RGB.
MAX_IMAGE_PIXELS = 178_956_970

ImageSource = str | Path | Image.Image | np.ndarray

# Modes whose samples do not fit in 8 bits; they are rescaled by hand because Pillow's
# ``convert`` clips them to 0..255 instead of scaling.
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_WIDE_MODES = _SIXTEEN_BIT_MODES | {"I", "F"}


def pillow_open() -> Callable[..., Any]:
    """Pillow's own ``Image.open``, even after another package replaced it.

    Ultralytics (the optional ``yolo`` extra) replaces ``PIL.Image.open`` when imported, with
    a wrapper that answers an unreadable file by trying to pip-install a HEIF plugin; a
    batch must instead record that file as unreadable and go on.
    """
    current = Image.open
    if getattr(current, "__module__", "PIL.Image") == "PIL.Image":
        return current
    patches = sys.modules.get("ultralytics.utils.patches")
    original = getattr(patches, "_image_open", None)
    return original if callable(original) else current


def load_image(source: ImageSource, *, max_pixels: int | None = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Load an image as an ``HxWx3`` ``uint8`` RGB array.

    Args:
        source: One of

            * a path (``str`` or :class:`~pathlib.Path`) to an image file in any format
              Pillow reads;
            * a :class:`PIL.Image.Image` in any mode;
            * a :class:`numpy.ndarray` of dtype ``uint8`` shaped ``HxW`` (grayscale),
              ``HxWx1``, ``HxWx3`` (RGB) or ``HxWx4`` (RGBA).
        max_pixels: Largest accepted ``width * height`` of a file or Pillow image, checked
            from the header before decoding; ``None`` disables the check. Pillow's own
            global limit (``2 * PIL.Image.MAX_IMAGE_PIXELS`` pixels) still applies to files.

    Returns:
        ``HxWx3`` ``uint8`` RGB array, C-contiguous. An ``HxWx3`` ``uint8`` input array is
        returned without copying when it is already C-contiguous (so it may share memory
        with the caller's array); every other input yields a new array.

    Conversions:
        * EXIF orientation of files and Pillow images is applied, so the array is upright
          as a photo viewer shows it.
        * Grayscale, palette, CMYK, YCbCr and other modes are converted to RGB by Pillow.
        * Alpha is dropped, not composited: a transparent pixel keeps the colour stored
          under it (for most encoders that is black). Pillow's ``convert("RGB")`` and
          slicing an ``HxWx4`` array behave the same way.
        * 16-bit grayscale (modes ``I;16*``) is scaled to 8 bits (``round(v / 257)``, so
          65535 becomes 255). Mode ``I`` (32-bit integers, used by older Pillow versions
          for 16-bit PNGs) is treated as 16-bit when any value exceeds 255 and as 8-bit
          otherwise; mode ``F`` (32-bit float) is scaled by 255 when all values lie in
          ``[0, 1]`` and clipped to ``[0, 255]`` otherwise.

    Raises:
        InputError: The file is missing, a directory, empty, not an image, truncated or
            otherwise undecodable; the image has zero size or more than ``max_pixels``
            pixels; the array has the wrong dtype or shape; a Pillow image cannot be
            decoded (e.g. opened from a truncated file, or closed); or ``max_pixels`` is not
            a positive int or None.
    """
    if max_pixels is not None and (
        isinstance(max_pixels, bool)
        or not isinstance(max_pixels, int | np.integer)
        or max_pixels < 1
    ):
        raise InputError(f"max_pixels must be a positive int or None, got {max_pixels!r}.")
    if isinstance(source, np.ndarray):
        return _from_array(np.asarray(source))  # subclasses (np.matrix) as plain arrays
    if isinstance(source, Image.Image):
        try:
            return _from_pil(source, "given Pillow image", max_pixels)
        except InputError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
            # e.g. Image.open() of a truncated file, or an image that was closed
            raise InputError(
                "The given Pillow image cannot be decoded (truncated, corrupt or closed): "
                f"{_reason(exc)}."
            ) from exc
    if isinstance(source, str | Path):
        return _from_file(Path(source), max_pixels)
    raise InputError(
        "An image must be a file path, a PIL.Image.Image or a numpy array, "
        f"not {type(source).__name__}."
    )


def _from_file(path: Path, max_pixels: int | None) -> np.ndarray:
    """Open, check and decode the image file at ``path`` into ``HxWx3`` ``uint8``."""
    try:
        # exists() itself raises for some paths, e.g. OSError "File name too long"
        if not path.exists():
            raise InputError(f"Image file '{path}' does not exist.")
        if path.is_dir():
            raise InputError(f"Image path '{path}' is a directory, not an image file.")
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"Cannot read image file '{path}': {_reason(exc)}.") from exc
    if size == 0:
        raise InputError(f"Image file '{path}' is empty (0 bytes).")
    what = f"image file '{path}'"
    try:
        with warnings.catch_warnings():
            # Pillow warns between MAX_IMAGE_PIXELS and twice that; our own max_pixels
            # check below decides instead, so the warning is not shown to users.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with pillow_open()(path) as im:
                return _from_pil(im, what, max_pixels)
    except Image.DecompressionBombError as exc:
        raise InputError(
            f"Image file '{path}' is too large to decode safely ({_reason(exc)}); "
            "raise PIL.Image.MAX_IMAGE_PIXELS if it is trusted."
        ) from exc
    except Image.UnidentifiedImageError as exc:
        raise InputError(
            f"Image file '{path}' is not an image or is in a format Pillow cannot read."
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # InputError derives from ValueError: let ours through unchanged.
        if isinstance(exc, InputError):
            raise
        raise InputError(
            f"Image file '{path}' is truncated or corrupt and cannot be decoded: {_reason(exc)}."
        ) from exc


def _from_pil(im: Image.Image, what: str, max_pixels: int | None) -> np.ndarray:
    """Check the size of a (possibly not yet decoded) Pillow image, decode and convert it.

    Args:
        im: Pillow image; its pixels may not be loaded yet.
        what: Description used in error messages, e.g. ``"image file a.png"``.
        max_pixels: Pixel limit, or ``None`` for no limit.

    Returns:
        ``HxWx3`` ``uint8`` RGB array.
    """
    width, height = im.size
    if width <= 0 or height <= 0:
        raise InputError(f"The {what} has zero size ({width}x{height} pixels).")
    if max_pixels is not None and width * height > max_pixels:
        raise InputError(
            f"The {what} has {width}x{height} = {width * height:,} pixels, more than the "
            f"limit of {max_pixels:,} (a possible decompression bomb); pass a larger "
            "max_pixels if it is trusted."
        )
    im.load()  # decode now, so a truncated file fails here with a clear cause
    im = _exif_upright(im)
    return np.ascontiguousarray(_to_rgb(im, what))


def _exif_upright(im: Image.Image) -> Image.Image:
    """Return ``im`` rotated/flipped as its EXIF orientation tag says.

    Unreadable EXIF metadata is ignored (the image is returned as stored) rather than
    making an otherwise good image unusable.
    """
    try:
        upright = ImageOps.exif_transpose(im)
    except (KeyError, TypeError, ValueError, SyntaxError, OSError):
        return im
    return upright if upright is not None else im


def _to_rgb(im: Image.Image, what: str) -> np.ndarray:
    """Convert a decoded Pillow image of any mode into ``HxWx3`` ``uint8`` RGB."""
    if im.mode in _WIDE_MODES:
        gray = _wide_to_uint8(np.asarray(im), im.mode)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if im.mode != "RGB":
        try:
            im = im.convert("RGB")
        except ValueError as exc:
            raise InputError(
                f"The {what} has pixel mode {im.mode!r}, which cannot be converted to RGB."
            ) from exc
    return np.array(im, dtype=np.uint8)


def _wide_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Scale an ``HxW`` array of 16-bit, 32-bit integer or float samples to ``uint8``.

    See :func:`load_image` for the rules per mode.
    """
    data = values.astype(np.float64)
    if mode == "F":
        finite = data[np.isfinite(data)]
        if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
            data = data * 255.0
        data = np.nan_to_num(data, nan=0.0, posinf=255.0, neginf=0.0)
    elif mode in _SIXTEEN_BIT_MODES or (mode == "I" and data.size and data.max() > 255):
        data = np.clip(data, 0.0, 65535.0) / 257.0
    return np.clip(np.rint(data), 0, 255).astype(np.uint8)


def _from_array(arr: np.ndarray) -> np.ndarray:
    """Validate a NumPy image and bring it to ``HxWx3`` ``uint8``."""
    if arr.dtype != np.uint8:
        raise InputError(_dtype_message(arr))
    if arr.size == 0:
        raise InputError(f"The image array is empty (shape {arr.shape}).")
    if arr.ndim == 2:
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    if arr.ndim != 3:
        raise InputError(
            f"An image array must be HxW, HxWx1, HxWx3 or HxWx4, got shape {arr.shape}."
        )
    channels = arr.shape[2]
    if channels == 3:
        return np.ascontiguousarray(arr)
    if channels == 4:
        return np.ascontiguousarray(arr[:, :, :3])
    if channels == 1:
        return np.ascontiguousarray(np.repeat(arr, 3, axis=2))
    hint = ""
    if arr.shape[0] in (1, 3, 4):
        hint = " It looks channels-first; use arr.transpose(1, 2, 0)."
    raise InputError(
        f"An image array must have 1, 3 or 4 channels last (HxWxC), got shape {arr.shape}." + hint
    )


def _dtype_message(arr: np.ndarray) -> str:
    """Explain why a non-``uint8`` array is refused and how to convert it."""
    if arr.dtype == np.bool_:
        return (
            "An image array must be uint8, got bool (a mask?); "
            "use (arr * 255).astype(np.uint8) if it really is an image."
        )
    if np.issubdtype(arr.dtype, np.floating):
        return (
            f"An image array must be uint8, got {arr.dtype}: floats are ambiguous (0..1 or "
            "0..255?); convert explicitly, e.g. (img * 255).astype(np.uint8) for 0..1 values "
            "or np.clip(img, 0, 255).astype(np.uint8) for 0..255."
        )
    return (
        f"An image array must be uint8, got {arr.dtype}; convert it explicitly, e.g. "
        "np.clip(img, 0, 255).astype(np.uint8) or (img >> 8).astype(np.uint8) for 16-bit."
    )


def _reason(exc: BaseException) -> str:
    """One-line description of an exception, without trailing punctuation."""
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split()).rstrip(".")
