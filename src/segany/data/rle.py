"""COCO run-length encoding (RLE) of binary masks, without pycocotools.

A COCO RLE is a dict ``{"size": [h, w], "counts": ...}``. The mask is read in column-major
(Fortran) order, top to bottom within a column and columns left to right, and ``counts``
holds the lengths of alternating runs of 0s and 1s, starting with a run of 0s (of length
0 when the first pixel is set). ``counts`` comes in two forms:

* *uncompressed*: a list of ints;
* *compressed*: a string (SA-1B and pycocotools' ``mask.encode`` use this form), made as
  in pycocotools' ``rleToString``: from the third run on, each count is replaced by its
  difference to the count two places before it (``counts[i] - counts[i - 2]`` for
  ``i > 2``; note ``>``, not ``>=``, as in the C code), and each value is written as a
  little-endian sequence of 5-bit groups, one character per group: ``chr(48 + g)``, with
  bit ``0x20`` set on every group but the last and bit ``0x10`` of the last group giving
  the sign (the value is sign-extended from it).

The output of :func:`mask_to_rle` equals pycocotools'
``mask.encode(np.asfortranarray(mask.astype(np.uint8)))`` with ``counts`` decoded as UTF-8;
the tests check this on random and edge-case masks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from segany.errors import InputError

__all__ = [
    "decode_counts",
    "encode_counts",
    "mask_to_rle",
    "rle_area",
    "rle_box_area",
    "rle_to_mask",
]


def mask_to_rle(mask: npt.ArrayLike, *, compressed: bool = True) -> dict[str, Any]:
    """Encode a binary mask as a COCO RLE.

    Args:
        mask: ``HxW`` array; any non-zero value counts as set (normally ``bool``).
        compressed: Return ``counts`` as a compressed string (the default, as SA-1B stores
            it) rather than a list of ints.

    Returns:
        ``{"size": [H, W], "counts": str | list[int]}``.

    Raises:
        InputError: ``mask`` is not two-dimensional.
    """
    array = np.asarray(mask)
    if array.ndim != 2:
        raise InputError(f"a mask must be HxW (two-dimensional); got shape {array.shape}")
    height, width = array.shape
    flat = array.astype(bool, copy=False).ravel(order="F")
    counts = _runs(flat)
    return {
        "size": [int(height), int(width)],
        "counts": encode_counts(counts) if compressed else counts,
    }


def rle_to_mask(rle: dict[str, Any]) -> npt.NDArray[np.bool_]:
    """Decode a COCO RLE (compressed or uncompressed counts) into an ``HxW`` bool mask.

    Args:
        rle: ``{"size": [H, W], "counts": str | bytes | list[int]}``.

    Returns:
        ``HxW`` bool array, C-contiguous.

    Raises:
        InputError: ``rle`` lacks ``size`` or ``counts``, a count is negative, or the
            counts do not add up to ``H * W``.
    """
    height, width = _size(rle)
    counts = _counts(rle)
    total = height * width
    if sum(counts) != total:
        raise InputError(
            f"RLE counts add up to {sum(counts)} pixels, but size {height}x{width} has {total}"
        )
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, np.asarray(counts, dtype=np.int64))
    return np.ascontiguousarray(flat.reshape(width, height).T)


def rle_area(rle: dict[str, Any]) -> int:
    """Number of set pixels of a COCO RLE (the sum of its runs of 1s), without decoding it."""
    return int(sum(_counts(rle)[1::2]))


def rle_box_area(rle: dict[str, Any]) -> tuple[tuple[float, float, float, float], int]:
    """The bbox (XYWH, ``w = x_max - x + 1`` as pycocotools' ``toBbox``; all 0 when empty)
    and area of a COCO RLE, from its runs alone: no ``HxW`` decode.

    Raises:
        InputError: as :func:`rle_to_mask` (bad size or counts).
    """
    height, width = _size(rle)
    counts = np.asarray(_counts(rle), dtype=np.int64)
    if int(counts.sum()) != height * width:
        raise InputError(f"RLE counts add up to {int(counts.sum())} pixels, but size "
                         f"{height}x{width} has {height * width}")  # fmt: skip
    ends = np.cumsum(counts)
    starts = ends - counts
    ones = (np.arange(len(counts)) % 2 == 1) & (counts > 0)
    first, last = starts[ones], ends[ones] - 1  # pixel indices, column-major
    if len(first) == 0:
        return (0.0, 0.0, 0.0, 0.0), 0
    x0, x1 = int(first.min() // height), int(last.max() // height)
    within = first // height == last // height  # runs inside one column
    y0 = int((first[within] % height).min()) if within.all() else 0
    y1 = int((last[within] % height).max()) if within.all() else height - 1
    box = (float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1))
    return box, int(counts[ones].sum())


def encode_counts(counts: list[int]) -> str:
    """Compress run lengths into a COCO counts string (see the module docstring)."""
    chars: list[str] = []
    for i, count in enumerate(counts):
        value = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            group = value & 0x1F
            value >>= 5
            more = value != -1 if group & 0x10 else value != 0
            if more:
                group |= 0x20
            chars.append(chr(group + 48))
    return "".join(chars)


def decode_counts(text: str | bytes) -> list[int]:
    """Decompress a COCO counts string into run lengths (the inverse of :func:`encode_counts`).

    Raises:
        InputError: ``text`` holds a character outside COCO's alphabet (``'0'`` to
            ``chr(48 + 63)``) or ends in the middle of a value.
    """
    data = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    counts: list[int] = []
    value = shift = 0
    for byte in data:
        group = byte - 48
        if not 0 <= group < 64:
            raise InputError(f"invalid character {chr(byte)!r} in a compressed RLE string")
        value |= (group & 0x1F) << shift
        shift += 5
        if group & 0x20:
            continue
        if group & 0x10:
            value |= -1 << shift
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
        value = shift = 0
    if shift:
        raise InputError("a compressed RLE string ends in the middle of a value")
    return counts


def _runs(flat: npt.NDArray[np.bool_]) -> list[int]:
    """Alternating run lengths of a flat bool array, starting with a (maybe empty) 0-run."""
    if flat.size == 0:
        return []
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def _size(rle: dict[str, Any]) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in rle["size"])
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"an RLE needs 'size': [height, width]; got {rle!r:.80}") from error
    if height < 0 or width < 0:
        raise InputError(f"an RLE size must not be negative; got {[height, width]}")
    return height, width


def _counts(rle: dict[str, Any]) -> list[int]:
    try:
        raw = rle["counts"]
    except (KeyError, TypeError) as error:
        raise InputError(f"an RLE needs 'counts'; got {rle!r:.80}") from error
    counts = decode_counts(raw) if isinstance(raw, str | bytes) else [int(c) for c in raw]
    if any(c < 0 for c in counts):
        raise InputError("RLE counts must not be negative")
    return counts
