"""Random shapes rasterised into boolean masks, and ways of cutting a mask into parts.

Every shape is rasterised only inside its bounding box clipped to the image, and returned
as a :class:`Region` (an ``hxw`` bool mask plus its top-left corner in the image), so the
cost of a shape grows with its size, not with the image's. Polygons, lines and curves are
drawn with Pillow's ``ImageDraw`` (C code); ellipses are evaluated with NumPy.

Shape kinds (:data:`SHAPE_KINDS`):

* ``"polygon"``: convex (vertices on a random ellipse) or concave (random radii);
* ``"ellipse"``: a rotated ellipse;
* ``"star"``: 4 to 9 points with a random inner radius;
* ``"blob"``: a smooth closed curve (a circle perturbed by a few harmonics);
* ``"thin"``: a straight stick or a smooth curve, 2 to 6 pixels wide by default;
* ``"ring"``: an elliptical annulus or a polygonal frame (a shape with a hole).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

__all__ = [
    "SHAPE_KINDS",
    "Region",
    "ellipse_region",
    "inner_shape",
    "polygon_region",
    "rasterize_shape",
    "split_by_cuts",
]

#: Names of the shapes that :func:`rasterize_shape` draws.
SHAPE_KINDS: tuple[str, ...] = ("polygon", "ellipse", "star", "blob", "thin", "ring")

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Region:
    """A bool mask ``hxw`` placed with its top-left pixel at ``(y0, x0)`` in an image."""

    mask: BoolArray
    y0: int
    x0: int

    @property
    def y1(self) -> int:
        """Row after the last row of the region (exclusive)."""
        return self.y0 + self.mask.shape[0]

    @property
    def x1(self) -> int:
        """Column after the last column of the region (exclusive)."""
        return self.x0 + self.mask.shape[1]

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices selecting the region's box in the image."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def rasterize_shape(
    kind: str,
    rng: np.random.Generator,
    cy: float,
    cx: float,
    radius: float,
    height: int,
    width: int,
    thin_width: tuple[int, int] = (2, 6),
) -> Region | None:
    """Rasterise a random shape of ``kind`` centred near ``(cy, cx)``.

    Args:
        kind: One of :data:`SHAPE_KINDS`.
        rng: Source of the shape's random parameters.
        cy, cx: Centre in image pixels (may lie outside the image).
        radius: Rough half-extent in pixels (half the length of a ``"thin"`` shape).
        height, width: Image size; the shape is clipped to it.
        thin_width: Range (inclusive) of a ``"thin"`` shape's line width in pixels.

    Returns:
        The shape's region, or ``None`` when nothing of it falls inside the image.

    Raises:
        ValueError: ``kind`` is unknown (a programming error).
    """
    radius = max(radius, 1.5)
    if kind == "polygon":
        if rng.random() < 0.5:
            return polygon_region(_convex_points(rng, cx, cy, radius), height, width)
        return polygon_region(_concave_points(rng, cx, cy, radius), height, width)
    if kind == "ellipse":
        ratio = rng.uniform(0.35, 1.0)
        return ellipse_region(
            cx, cy, radius, radius * ratio, rng.uniform(0, math.pi), height, width
        )
    if kind == "star":
        return polygon_region(_star_points(rng, cx, cy, radius), height, width)
    if kind == "blob":
        return polygon_region(_blob_points(rng, cx, cy, radius), height, width)
    if kind == "thin":
        return _thin(rng, cx, cy, radius, height, width, thin_width)
    if kind == "ring":
        return _ring(rng, cx, cy, radius, height, width)
    raise ValueError(f"unknown shape kind {kind!r}; expected one of {SHAPE_KINDS}")


def split_by_cuts(rng: np.random.Generator, mask: BoolArray, cuts: int) -> list[BoolArray]:
    """Cut a mask into regions with ``cuts`` random straight or gently curved lines.

    Each cut passes through a random pixel of the mask at a random angle; a pixel's region is
    given by the side of every cut it lies on, so ``cuts`` cuts make up to ``2 ** cuts``
    regions (a region may be disconnected when the mask is concave).

    Args:
        rng: Source of the cuts.
        mask: ``hxw`` bool mask, not empty.
        cuts: Number of cuts (1 or more).

    Returns:
        The non-empty regions, ``hxw`` bool masks that partition ``mask``; a single region
        (``mask`` itself) when no cut crossed it.
    """
    height, width = mask.shape
    ys_in, xs_in = np.nonzero(mask)
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    code = np.zeros((height, width), dtype=np.uint8)
    for bit in range(cuts):
        pick = int(rng.integers(len(ys_in)))
        py, px = float(ys_in[pick]), float(xs_in[pick])
        angle = rng.uniform(0, math.pi)
        cos, sin = np.float32(math.cos(angle)), np.float32(math.sin(angle))
        along = (xs - np.float32(px)) * cos + (ys - np.float32(py)) * sin
        across = (ys - np.float32(py)) * cos - (xs - np.float32(px)) * sin
        bend = np.float32(rng.uniform(-1.5, 1.5) / max(height, width, 1))
        side = across + bend * along * along > 0
        code |= side.astype(np.uint8) << np.uint8(bit)
    regions = [mask & (code == value) for value in range(2**cuts)]
    return [region for region in regions if region.any()]


def inner_shape(rng: np.random.Generator, mask: BoolArray, scale: float) -> BoolArray | None:
    """A random ellipse, polygon or blob inside ``mask``, clipped to it.

    Args:
        rng: Source of the shape.
        mask: ``hxw`` bool mask, not empty.
        scale: Radius of the inner shape as a fraction of the radius of a disc with the
            mask's area.

    Returns:
        An ``hxw`` bool mask that is a subset of ``mask``, or ``None`` when it is empty.
    """
    height, width = mask.shape
    ys_in, xs_in = np.nonzero(mask)
    pick = int(rng.integers(len(ys_in)))
    cy, cx = float(ys_in[pick]), float(xs_in[pick])
    # Pull the centre towards the mask's centroid so the inner shape is mostly inside.
    cy = 0.5 * cy + 0.5 * float(ys_in.mean())
    cx = 0.5 * cx + 0.5 * float(xs_in.mean())
    radius = scale * math.sqrt(len(ys_in) / math.pi)
    kind = ("ellipse", "polygon", "blob")[int(rng.integers(3))]
    region = rasterize_shape(kind, rng, cy, cx, radius, height, width)
    if region is None:
        return None
    inner = np.zeros_like(mask)
    inner[region.slices] = region.mask
    inner &= mask
    return inner if inner.any() else None


def polygon_region(points: npt.NDArray[np.float64], height: int, width: int) -> Region | None:
    """Rasterise a closed polygon given as ``Nx2`` ``(x, y)`` vertices."""
    box = _clip_box(points, 1.0, height, width)
    if box is None:
        return None
    y0, x0, y1, x1 = box
    canvas = Image.new("1", (x1 - x0, y1 - y0))
    shifted = points - (x0, y0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in shifted.tolist()], fill=1)
    return _region(np.asarray(canvas), y0, x0)


def ellipse_region(
    cx: float, cy: float, a: float, b: float, angle: float, height: int, width: int
) -> Region | None:
    """Rasterise a rotated ellipse with semi-axes ``a`` and ``b`` (pixel centres inside)."""
    cos, sin = math.cos(angle), math.sin(angle)
    half_w = math.sqrt((a * cos) ** 2 + (b * sin) ** 2)
    half_h = math.sqrt((a * sin) ** 2 + (b * cos) ** 2)
    corners = np.array([[cx - half_w, cy - half_h], [cx + half_w, cy + half_h]])
    box = _clip_box(corners, 1.0, height, width)
    if box is None:
        return None
    y0, x0, y1, x1 = box
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
    u = (xs * np.float32(cos) + ys * np.float32(sin)) * np.float32(1 / a)
    v = (ys * np.float32(cos) - xs * np.float32(sin)) * np.float32(1 / b)
    return _region(u * u + v * v <= 1, y0, x0)


def _thin(
    rng: np.random.Generator,
    cx: float,
    cy: float,
    radius: float,
    height: int,
    width: int,
    thin_width: tuple[int, int],
) -> Region | None:
    """A stick or a cubic Bezier curve of length about ``2 * radius``, ``thin_width`` wide."""
    line_width = int(rng.integers(thin_width[0], thin_width[1] + 1))
    angle = rng.uniform(0, 2 * math.pi)
    direction = np.array([math.cos(angle), math.sin(angle)])
    start = np.array([cx, cy]) - radius * direction
    end = np.array([cx, cy]) + radius * direction
    if rng.random() < 0.3:
        points = np.stack([start, end])
    else:
        controls = np.array([cx, cy]) + rng.uniform(-radius, radius, (2, 2))
        t = np.linspace(0, 1, 24)[:, None]
        points = (
            (1 - t) ** 3 * start
            + 3 * (1 - t) ** 2 * t * controls[0]
            + 3 * (1 - t) * t**2 * controls[1]
            + t**3 * end
        )
    box = _clip_box(points, line_width / 2 + 2, height, width)
    if box is None:
        return None
    y0, x0, y1, x1 = box
    canvas = Image.new("1", (x1 - x0, y1 - y0))
    shifted = (points - (x0, y0)).tolist()
    ImageDraw.Draw(canvas).line(
        [tuple(p) for p in shifted], fill=1, width=line_width, joint="curve"
    )
    return _region(np.asarray(canvas), y0, x0)


def _ring(
    rng: np.random.Generator, cx: float, cy: float, radius: float, height: int, width: int
) -> Region | None:
    """An elliptical annulus or a convex polygon with a smaller copy of itself cut out."""
    hole = rng.uniform(0.35, 0.8)
    if rng.random() < 0.5:
        ratio, angle = rng.uniform(0.5, 1.0), rng.uniform(0, math.pi)
        outer = ellipse_region(cx, cy, radius, radius * ratio, angle, height, width)
        if outer is None:
            return None
        inner = ellipse_region(cx, cy, radius * hole, radius * ratio * hole, angle, height, width)
    else:
        points = _convex_points(rng, cx, cy, radius)
        outer = polygon_region(points, height, width)
        if outer is None:
            return None
        inner = polygon_region((points - (cx, cy)) * hole + (cx, cy), height, width)
    mask = outer.mask.copy()
    if inner is not None:
        # The hole's box can stick out of the outline's by a pixel (rasterisation): cut
        # only where the two overlap.
        y0, y1 = max(inner.y0, outer.y0), min(inner.y1, outer.y1)
        x0, x1 = max(inner.x0, outer.x0), min(inner.x1, outer.x1)
        if y1 > y0 and x1 > x0:
            hole_mask = inner.mask[y0 - inner.y0 : y1 - inner.y0, x0 - inner.x0 : x1 - inner.x0]
            mask[y0 - outer.y0 : y1 - outer.y0, x0 - outer.x0 : x1 - outer.x0] &= ~hole_mask
    return _region(mask, outer.y0, outer.x0)


def _convex_points(
    rng: np.random.Generator, cx: float, cy: float, radius: float
) -> npt.NDArray[np.float64]:
    """3 to 8 vertices on a random ellipse at well-spread angles: a convex polygon."""
    count = int(rng.integers(3, 9))
    angles = 2 * math.pi * (np.arange(count) + rng.uniform(-0.3, 0.3, count)) / count
    return _on_ellipse(rng, cx, cy, radius, angles, np.ones(count))


def _concave_points(
    rng: np.random.Generator, cx: float, cy: float, radius: float
) -> npt.NDArray[np.float64]:
    """6 to 14 vertices at spread angles with random radii: usually a concave polygon."""
    count = int(rng.integers(6, 15))
    angles = 2 * math.pi * (np.arange(count) + rng.uniform(-0.35, 0.35, count)) / count
    return _on_ellipse(rng, cx, cy, radius, angles, rng.uniform(0.3, 1.0, count))


def _star_points(
    rng: np.random.Generator, cx: float, cy: float, radius: float
) -> npt.NDArray[np.float64]:
    """A star with 4 to 9 points; inner radius 0.3 to 0.6 of the outer one."""
    tips = int(rng.integers(4, 10))
    angles = math.pi * np.arange(2 * tips) / tips
    radii = np.where(np.arange(2 * tips) % 2 == 0, 1.0, rng.uniform(0.3, 0.6))
    return _on_ellipse(rng, cx, cy, radius, angles, radii, squash=(0.7, 1.0))


def _blob_points(
    rng: np.random.Generator, cx: float, cy: float, radius: float
) -> npt.NDArray[np.float64]:
    """48 vertices of a circle perturbed by harmonics 2 to 5: a smooth blob."""
    angles = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    radii = np.ones(48)
    for k in range(2, 6):
        radii += rng.uniform(0, 0.3) / k * np.cos(k * angles + rng.uniform(0, 2 * math.pi))
    return _on_ellipse(rng, cx, cy, radius, angles, np.maximum(radii, 0.3) / radii.max())


def _on_ellipse(
    rng: np.random.Generator,
    cx: float,
    cy: float,
    radius: float,
    angles: npt.NDArray[np.float64],
    radii: npt.NDArray[np.float64],
    squash: tuple[float, float] = (0.4, 1.0),
) -> npt.NDArray[np.float64]:
    """``Nx2`` ``(x, y)`` points at ``angles`` and relative ``radii`` on a rotated ellipse."""
    ratio, rotation = rng.uniform(*squash), rng.uniform(0, 2 * math.pi)
    x = radius * radii * np.cos(angles)
    y = radius * ratio * radii * np.sin(angles)
    cos, sin = math.cos(rotation), math.sin(rotation)
    return np.stack([cx + x * cos - y * sin, cy + x * sin + y * cos], axis=1)


def _clip_box(
    points: npt.NDArray[np.float64], margin: float, height: int, width: int
) -> tuple[int, int, int, int] | None:
    """Integer ``(y0, x0, y1, x1)`` box around ``points`` plus ``margin``, clipped."""
    x0 = max(int(math.floor(points[:, 0].min() - margin)), 0)
    y0 = max(int(math.floor(points[:, 1].min() - margin)), 0)
    x1 = min(int(math.ceil(points[:, 0].max() + margin)) + 1, width)
    y1 = min(int(math.ceil(points[:, 1].max() + margin)) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    return y0, x0, y1, x1


def _region(mask: BoolArray, y0: int, x0: int) -> Region | None:
    """A :class:`Region` of ``mask`` (bool) or ``None`` when it is empty."""
    mask = mask.astype(bool, copy=False)
    return Region(mask, y0, x0) if mask.any() else None
