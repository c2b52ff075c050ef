"""Drawing segmentation results: masks, point prompts and boxes over an image, and PNG output.

Only NumPy and Pillow (``PIL.ImageDraw``) are used, so visualisation needs neither
matplotlib nor OpenCV.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from segany.data.images import load_image
from segany.errors import InputError
from segany.fileio import write_atomic

__all__ = ["PALETTE", "overlay_masks", "save_png"]

#: Mask colours (RGB), used in order and repeated when there are more masks. Saturated but
#: not pure green or red, which mark positive and negative points.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (30, 144, 255),  # blue
    (255, 159, 28),  # orange
    (46, 196, 182),  # teal
    (231, 76, 160),  # pink
    (155, 89, 182),  # purple
    (241, 196, 15),  # yellow
    (0, 184, 217),  # cyan
    (141, 110, 99),  # brown
    (128, 128, 0),  # olive
    (96, 125, 139),  # slate
)

_POSITIVE = (0, 200, 70)
_NEGATIVE = (230, 30, 40)
_WHITE = (255, 255, 255)
_OUTLINE_DARKEN = 0.55


def overlay_masks(
    image: np.ndarray,
    masks: np.ndarray,
    *,
    points: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
    alpha: float = 0.5,
) -> np.ndarray:
    """Paint masks, point prompts and boxes over an image.

    Mask ``i`` is blended in ``PALETTE[i % len(PALETTE)]`` with opacity ``alpha`` and
    outlined in a darker shade of the same colour; later masks are painted over earlier
    ones. Positive points are green five-pointed stars with a white edge, negative points
    red ones. Box ``b`` is a rectangle in ``PALETTE[b % len(PALETTE)]`` (the colour of
    mask ``b``, matching one best mask per box) with a white halo. Line widths and marker
    sizes grow with the image size.

    Args:
        image: ``HxWx3`` ``uint8`` RGB image (any array :func:`~segany.data.load_image`
            accepts, e.g. ``HxW`` grayscale, is converted first). Not modified.
        masks: ``NxHxW`` boolean masks (an ``HxW`` array is one mask; ``N`` may be 0).
            Integer arrays are accepted with nonzero meaning inside.
        points: ``Nx2`` point coordinates ``(x, y)`` in image pixels, or ``None``.
        labels: ``N`` point labels, 1 positive and 0 negative; ``None`` means all positive.
        boxes: ``Bx4`` (or ``(4,)``) boxes ``(x0, y0, x1, y1)`` in image pixels, or ``None``.
        alpha: Mask opacity in ``[0, 1]``.

    Returns:
        New ``HxWx3`` ``uint8`` RGB image.

    Raises:
        InputError: An argument has the wrong shape, dtype or values.
    """
    rgb = load_image(np.asarray(image))
    height, width = rgb.shape[:2]
    mask_stack = _as_masks(masks, height, width)
    opacity = _as_alpha(alpha)

    canvas = rgb.astype(np.float32)
    thickness = max(1, round(min(height, width) / 400))
    for index, mask in enumerate(mask_stack):
        colour = np.asarray(PALETTE[index % len(PALETTE)], dtype=np.float32)
        canvas[mask] = canvas[mask] * (1.0 - opacity) + colour * opacity
        edge = mask & ~_erode(mask, thickness)
        canvas[edge] = colour * _OUTLINE_DARKEN
    out = Image.fromarray(np.clip(np.rint(canvas), 0, 255).astype(np.uint8), mode="RGB")

    draw = ImageDraw.Draw(out)
    scale = min(height, width)
    if boxes is not None:
        line = max(2, round(scale / 250))
        for index, (x0, y0, x1, y1) in enumerate(_as_boxes(boxes)):
            corners = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            draw.rectangle(corners, outline=_WHITE, width=line + 2)
            draw.rectangle(corners, outline=PALETTE[index % len(PALETTE)], width=line)
    if points is not None:
        coords, flags = _as_points(points, labels)
        radius = min(40.0, max(6.0, scale * 0.035))
        edge_width = max(1, round(radius / 6))
        for (x, y), positive in zip(coords, flags, strict=True):
            draw.polygon(
                _star(x, y, radius),
                fill=_POSITIVE if positive else _NEGATIVE,
                outline=_WHITE,
                width=edge_width,
            )
    elif labels is not None:
        raise InputError("labels were given without points.")
    return np.asarray(out, dtype=np.uint8).copy()


def save_png(array: np.ndarray, path: str | Path) -> Path:
    """Write an image or mask to a PNG file atomically.

    The PNG is written to a temporary file in the destination directory and moved over
    ``path`` with :func:`os.replace`, so readers never see a half-written file and an
    interrupted write leaves any previous file intact.

    Args:
        array: One of ``HxW`` ``bool`` mask (written as 8-bit grayscale, 0 and 255),
            ``HxW`` ``uint8`` grayscale, ``HxWx3`` ``uint8`` RGB or ``HxWx4`` ``uint8``
            RGBA.
        path: Destination file; its directory must exist.

    Returns:
        The destination path.

    Raises:
        InputError: The array has an unsupported dtype or shape.
        OSError: The file cannot be written.
    """
    buffer = io.BytesIO()
    _to_pil(np.asarray(array)).save(buffer, format="PNG")
    return write_atomic(path, buffer.getvalue(), make_parents=False)


def _to_pil(arr: np.ndarray) -> Image.Image:
    """Convert a mask or image array accepted by :func:`save_png` into a Pillow image."""
    if arr.size == 0:
        raise InputError(f"Cannot save an empty array (shape {arr.shape}) as PNG.")
    if arr.dtype == np.bool_ and arr.ndim == 2:
        return Image.fromarray(arr.astype(np.uint8) * 255, mode="L")
    if arr.dtype == np.uint8:
        if arr.ndim == 2:
            return Image.fromarray(np.ascontiguousarray(arr), mode="L")
        if arr.ndim == 3 and arr.shape[2] in (3, 4):
            mode = "RGB" if arr.shape[2] == 3 else "RGBA"
            return Image.fromarray(np.ascontiguousarray(arr), mode=mode)
    raise InputError(
        "save_png expects an HxW bool mask or an HxW, HxWx3 or HxWx4 uint8 image, "
        f"got dtype {arr.dtype} and shape {arr.shape}."
    )


def _as_masks(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Validate masks and return them as an ``NxHxW`` boolean array."""
    arr = np.asarray(masks)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (height, width):
        raise InputError(
            f"masks must be NxHxW with HxW = {height}x{width} (the image size), "
            f"got shape {arr.shape}."
        )
    if arr.dtype == np.bool_:
        return arr
    if np.issubdtype(arr.dtype, np.integer):
        return arr != 0
    raise InputError(
        f"masks must be boolean, got {arr.dtype}; threshold logits first, e.g. masks > 0."
    )


def _as_points(points: np.ndarray, labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Validate points and labels; return ``Nx2`` float coordinates and ``N`` positive flags."""
    coords = np.asarray(points, dtype=np.float64)
    if coords.shape == (2,):
        coords = coords[None]
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise InputError(f"points must be an Nx2 array of (x, y), got shape {coords.shape}.")
    if not np.isfinite(coords).all():
        raise InputError("points must be finite numbers.")
    if labels is None:
        return coords, np.ones(len(coords), dtype=bool)
    flags = np.asarray(labels).reshape(-1)
    if flags.shape != (len(coords),):
        raise InputError(
            f"labels must have one entry per point ({len(coords)}), got shape {flags.shape}."
        )
    if not np.isin(flags, (0, 1)).all():
        raise InputError("labels must be 1 (positive) or 0 (negative).")
    return coords, flags == 1


def _as_boxes(boxes: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Validate boxes and return them as a list of ``(x0, y0, x1, y1)`` tuples."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.shape == (4,):
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise InputError(f"boxes must be a Bx4 array of (x0, y0, x1, y1), got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise InputError("box coordinates must be finite numbers.")
    return [(float(a), float(b), float(c), float(d)) for a, b, c, d in arr]


def _as_alpha(alpha: float) -> float:
    """Validate the mask opacity and return it as a float in ``[0, 1]``."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise InputError(f"alpha must be a number in [0, 1], got {alpha!r}.")
    return value


def _erode(mask: np.ndarray, iterations: int) -> np.ndarray:
    """Binary erosion of an ``HxW`` mask with a 4-neighbourhood, ``iterations`` times.

    Pixels outside the image count as inside the mask, so masks touching the border are not
    outlined along it.
    """
    out = mask
    for _ in range(iterations):
        pad = np.pad(out, 1, mode="constant", constant_values=True)
        out = pad[1:-1, 1:-1] & pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    return out


def _star(x: float, y: float, radius: float) -> list[tuple[float, float]]:
    """Vertices of a five-pointed star centred at ``(x, y)`` with one tip pointing up."""
    vertices = []
    for k in range(10):
        r = radius if k % 2 == 0 else radius * 0.45
        angle = -math.pi / 2 + k * math.pi / 5
        vertices.append((x + r * math.cos(angle), y + r * math.sin(angle)))
    return vertices
