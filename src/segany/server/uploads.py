"""Checking uploaded image files and storing them under the data dir.

An upload is read whole into memory (bounded by the byte limit, which the app enforces on
the request body), identified from its header, refused before any decoding when its pixel
count is over the limit (a decompression bomb), then decoded once in full to prove it is
intact. Only then is it written, atomically, as ``images/<sha[:2]>/<sha256>.<ext>``: the
same file uploaded twice is stored once, and a refused upload leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import io
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from PIL import Image

from segany.data.images import load_image, pillow_open
from segany.errors import InputError
from segany.fileio import write_atomic
from segany.server.errors import TooLargeError, UnsupportedError

__all__ = ["FORMATS", "CheckedImage", "check_file_name", "check_image", "store_image"]

#: Pillow format -> stored extension.
FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}


@dataclass(frozen=True)
class CheckedImage:
    """An upload that passed: its bytes, sha256, extension and upright size."""

    data: bytes
    sha256: str
    extension: str
    width: int
    height: int


def check_file_name(name: str) -> str:
    """``name`` if it is a plain file name; :class:`InputError` for anything with a path in
    it (``../x.png``, ``/etc/x``, ``C:\\x``), control characters, or nothing at all."""
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned or len(cleaned) > 255:
        raise InputError("a file name needs 1 to 255 characters")
    if any(unicodedata.category(ch) == "Cc" for ch in cleaned):
        raise InputError("a file name cannot hold control characters")
    plain = (
        PurePosixPath(cleaned).name == cleaned
        and PureWindowsPath(cleaned).name == cleaned
        and cleaned not in (".", "..")
    )
    if not plain:
        raise InputError(f"file name {name!r} holds a path; send the file's name only")
    return cleaned


def check_image(data: bytes, *, max_pixels: int) -> CheckedImage:
    """Identify, size-check and decode ``data``; raise before decoding what is too large.

    Raises:
        UnsupportedError: not an image, or not one of :data:`FORMATS` (answered 415).
        TooLargeError: more than ``max_pixels`` pixels (413).
        InputError: an image that is truncated or corrupt (400).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Pillow's own open: an imported Ultralytics replaces Image.open with one that
            # tries to install a HEIF plugin for what it cannot read
            header = pillow_open()(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError:
        raise TooLargeError(f"the image has more than {max_pixels} pixels") from None
    except (OSError, ValueError, SyntaxError):
        raise UnsupportedError(f"not an image of a supported type ({', '.join(FORMATS)})") from None
    with header:
        if header.format not in FORMATS:
            raise UnsupportedError(
                f"{header.format} images are not accepted; send one of {', '.join(FORMATS)}"
            )
        width, height = header.size
        if width * height > max_pixels:
            raise TooLargeError(
                f"the image is {width}x{height} = {width * height} pixels; the limit is "
                f"{max_pixels}"
            )
        extension = FORMATS[header.format]
        array = load_image(header, max_pixels=max_pixels)  # decodes in full (EXIF upright)
    return CheckedImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        extension=extension,
        width=int(array.shape[1]),
        height=int(array.shape[0]),
    )


def stored_name(image: CheckedImage) -> str:
    return f"{image.sha256[:2]}/{image.sha256}.{image.extension}"


def store_image(images_dir: Path, image: CheckedImage) -> str:
    """Write ``image`` under ``images_dir`` unless it is there; return its stored name."""
    name = stored_name(image)
    target = images_dir / name
    if not target.exists():
        write_atomic(target, image.data)
    return name


def remove_tmp_files(images_dir: Path) -> int:
    """Remove the temporary files of writes that a crash interrupted."""
    count = 0
    for tmp in images_dir.glob("*/.*.tmp"):
        tmp.unlink(missing_ok=True)
        count += 1
    return count
