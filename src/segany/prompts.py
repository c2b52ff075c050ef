"""Checking and normalising user prompts at the public edge (one clear error each)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError


@dataclass(frozen=True)
class Prompts:
    """Validated prompts in original-image pixels.

    points: Nx2 float64 (x, y) or None; labels: N int64 (1 positive, 0 negative) or None;
    boxes: Bx4 float64 XYXY or None; mask_input: Mx1xhxw float32 (M = 1 or B) or None;
    many_boxes: the caller passed a 2-D box array, so results keep a box dimension.
    """

    points: np.ndarray | None
    labels: np.ndarray | None
    boxes: np.ndarray | None
    mask_input: np.ndarray | None
    many_boxes: bool

    @property
    def num_prompts(self) -> int:
        """Independent prompts decoded (one per box; 1 without boxes)."""
        return 1 if self.boxes is None else len(self.boxes)


def _short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters (a prompt may be a huge nested list)."""
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real problem
        text = f"<{type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_float_array(value: object, what: str, dtype: type[np.floating] = np.float64) -> np.ndarray:
    """``value`` as a finite float array; anything else (strings, complex numbers, dates,
    ragged lists, ints too large for a float, NaN, inf) raises :class:`InputError`."""
    try:
        arr = np.asarray(value)
        if arr.dtype.kind not in "biufO":  # strings, complex numbers, dates, records
            raise TypeError(arr.dtype)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow becomes inf, refused below
            arr = arr.astype(dtype)
    except OverflowError as exc:  # a Python int beyond the float range
        raise InputError(f"{what} must be finite numbers (found a value too large)") from exc
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} must be numbers, got {_short_repr(value)}") from exc
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{what} must be finite numbers (found NaN or inf, or a value too large)")
    return arr


def check_prompts(
    image_size: tuple[int, int],
    low_res_size: int,
    points: object = None,
    labels: object = None,
    box: object = None,
    mask_input: object = None,
) -> Prompts:
    """Validate prompts for an image of ``image_size`` (H, W).

    Raises :class:`InputError` for: no prompt at all, points without labels (or the
    reverse), counts that differ, labels other than 0/1, points or boxes outside the
    image, boxes with x1 < x0 or y1 < y0, and mask inputs of the wrong shape.
    """
    height, width = image_size
    pts = lbl = boxes = masks = None
    if points is not None or labels is not None:
        if points is None or labels is None:
            raise InputError(
                "points and labels must be given together (labels: 1 = object, 0 = background)"
            )
        pts = _as_float_array(points, "points")
        if pts.ndim == 1 and pts.size == 2:
            pts = pts[None, :]
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
            raise InputError(f"points must be an Nx2 array of (x, y), got shape {pts.shape}")
        lbl_f = _as_float_array(labels, "labels").reshape(-1)
        if len(lbl_f) != len(pts):
            raise InputError(f"got {len(pts)} points but {len(lbl_f)} labels")
        if not np.all(np.isin(lbl_f, (0, 1))):
            raise InputError(f"labels must be 1 (object) or 0 (background), got {lbl_f.tolist()}")
        lbl = lbl_f.astype(np.int64)
        outside = (pts[:, 0] < 0) | (pts[:, 0] > width) | (pts[:, 1] < 0) | (pts[:, 1] > height)
        if outside.any():
            x, y = pts[int(np.argmax(outside))]
            raise InputError(
                f"point ({x:g}, {y:g}) is outside the {width}x{height} image "
                "(coordinates are x, y in pixels of the original image)"
            )
    many = False
    if box is not None:
        boxes = _as_float_array(box, "box")
        many = boxes.ndim == 2
        single = boxes.shape == (4,)
        boxes = boxes.reshape(-1, 4) if single or (many and boxes.shape[1] == 4) else None
        if boxes is None or len(boxes) == 0:
            raise InputError("box must be x0, y0, x1, y1 (or a Bx4 array of such boxes)")
        x0, y0, x1, y1 = boxes.T
        if np.any(x1 < x0) or np.any(y1 < y0):
            raise InputError("a box must have x1 >= x0 and y1 >= y0 (format x0, y0, x1, y1)")
        if np.any(x0 < 0) or np.any(y0 < 0) or np.any(x1 > width) or np.any(y1 > height):
            raise InputError(f"a box lies outside the {width}x{height} image")
    if mask_input is not None:
        masks = _as_float_array(mask_input, "mask_input", np.float32)
        given_shape = masks.shape
        if masks.ndim == 2:
            masks = masks[None, None]
        elif masks.ndim == 3:
            masks = (
                masks[:, None]
                if boxes is not None and len(masks) == len(boxes) > 1
                else (masks[None])
            )
        if masks.ndim != 4 or masks.shape[1:] != (1, low_res_size, low_res_size):
            raise InputError(
                f"mask_input must be 1x{low_res_size}x{low_res_size} low-res logits from a "
                f"previous prediction, got shape {given_shape}"
            )
        if boxes is not None and len(masks) not in (1, len(boxes)):
            raise InputError("give one mask_input, or one per box")
        if boxes is None and len(masks) != 1:
            raise InputError("without boxes, mask_input must hold a single mask")
    if pts is None and boxes is None and masks is None:
        raise InputError("give at least one prompt: points with labels, a box, or a mask_input")
    return Prompts(points=pts, labels=lbl, boxes=boxes, mask_input=masks, many_boxes=many)
