"""The ``"shifted"`` scene domain: shapes, fills and colours the default scenes never show.

The bundled model learnt from the default domain (:mod:`segany.data.scenes`). A data
engine's question is whether training on annotations of images unlike those makes the
model better on them, so ``SceneConfig(domain="shifted")`` draws scenes of the same
structure (background, clutter, occluding objects with parts) from other distributions:

* **shapes**: crosses, crescents, gears (some with an axle hole) and arrows, beside fewer
  ellipses, blobs and thin curves of the default kinds (:data:`SHIFTED_SHAPE_WEIGHTS`);
* **fills**: dot lattices, waves, cross-hatching and concentric rings (plus solid and
  noise fills), :data:`SHIFTED_TEXTURE_KINDS`;
* **palette**: pastel colours (saturation 0.1-0.45, value 0.7-1), objects' hues near the
  background's, parts' near their object's;
* **camouflage**: half the objects (:data:`CAMOUFLAGE_PROBABILITY`) are filled with the
  background's own pattern and colours (drawn afresh: another phase or angle), so only
  their outline shows where they are;
* **ink outlines**: every camouflaged object, and most others
  (:data:`OUTLINE_PROBABILITY`), is drawn with a dark line 1-3 px wide along its edge and
  along the boundaries between its parts. The line belongs to the object (it lies inside
  the object's and the part's masks), as a cartoon's outline belongs to the figure.

Everything is drawn from the scene's generator, so a shifted scene is a deterministic
function of its seed, like a default one.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

from segany.data.canvas import Canvas
from segany.data.shapes import (
    SHAPE_KINDS,
    Region,
    ellipse_region,
    polygon_region,
    rasterize_shape,
)
from segany.data.textures import Colour, Style, colour_map, nearby_colour, value_noise

__all__ = [
    "CAMOUFLAGE_PROBABILITY",
    "OUTLINE_PROBABILITY",
    "SHIFTED_SHAPE_KINDS",
    "SHIFTED_SHAPE_WEIGHTS",
    "SHIFTED_TEXTURE_KINDS",
    "ShiftedStyle",
    "draw_outlines",
    "shifted_background_style",
    "shifted_object_style",
    "shifted_part_style",
    "shifted_shape",
]

#: Shape kinds only the shifted domain draws.
SHIFTED_SHAPE_KINDS: tuple[str, ...] = ("cross", "crescent", "gear", "arrow")
#: Probability of each shape kind of a shifted scene's objects.
SHIFTED_SHAPE_WEIGHTS: dict[str, float] = {
    "cross": 0.2, "crescent": 0.15, "gear": 0.15, "arrow": 0.15,
    "ellipse": 0.1, "blob": 0.1, "thin": 0.15,
}  # fmt: skip
#: Fill patterns only the shifted domain draws.
SHIFTED_TEXTURE_KINDS: tuple[str, ...] = ("dots", "waves", "hatch", "rings")
#: Probability that an object is filled like the background (and always outlined).
CAMOUFLAGE_PROBABILITY = 0.5
#: Probability that an object that is not camouflaged (and then its parts) is outlined.
OUTLINE_PROBABILITY = 0.8
#: Objects' hues lie within this of the background's, parts' within this of their parent's.
HUE_SPREAD = 0.1

_OBJECT_FILLS = {"solid": 0.25, "dots": 0.2, "waves": 0.15, "hatch": 0.15, "rings": 0.1,
                 "noise": 0.15}  # fmt: skip
_BACKGROUND_FILLS = {"dots": 0.25, "waves": 0.25, "hatch": 0.2, "rings": 0.1, "noise": 0.2}


def pastel_colour(rng: np.random.Generator, near: Colour | None = None) -> Colour:
    """A pastel RGB colour: saturation in [0.1, 0.45], value in [0.7, 1]; its hue uniform,
    or within :data:`HUE_SPREAD` of the hue of ``near`` (a scene's palette)."""
    hue = rng.random()
    if near is not None:
        base = colorsys.rgb_to_hsv(*(float(c) / 255 for c in near))[0]
        hue = (base + HUE_SPREAD * (2 * hue - 1)) % 1.0
    sat, val = rng.uniform(0.1, 0.45), rng.uniform(0.7, 1.0)
    return np.array(colorsys.hsv_to_rgb(hue, sat, val), dtype=np.float32) * 255


def ink_colour(rng: np.random.Generator) -> Colour:
    """A dark outline colour: uniform hue, saturation in [0.2, 0.9], value in [0.05, 0.3]."""
    hue, sat, val = rng.random(), rng.uniform(0.2, 0.9), rng.uniform(0.05, 0.3)
    return np.array(colorsys.hsv_to_rgb(hue, sat, val), dtype=np.float32) * 255


@dataclass(frozen=True)
class ShiftedStyle(Style):
    """A :class:`~segany.data.textures.Style` that also renders the shifted fills;
    ``camouflage``: the background's style, worn by an object."""

    camouflage: bool = False

    def render(self, rng: np.random.Generator, height: int, width: int) -> npt.NDArray[np.uint8]:
        """Render an ``HxWx3`` uint8 fill (a shifted pattern, or a default one)."""
        if self.kind not in SHIFTED_TEXTURE_KINDS:
            return super().render(rng, height, width)
        pattern = _pattern(rng, self.kind, height, width)
        if self.mottle > 0:
            noise = value_noise(rng, height, width, scale=rng.uniform(6, 30))
            pattern = pattern * np.float32(1 - self.mottle) + noise * np.float32(self.mottle)
        return colour_map(pattern, self.colour_a, self.colour_b)


def shifted_background_style(rng: np.random.Generator) -> Style:
    """A pastel background with a dot, wave, hatch, ring or noise pattern, a little mottled."""
    colour = pastel_colour(rng)
    other = nearby_colour(rng, colour, 50)
    return ShiftedStyle(_pick(rng, _BACKGROUND_FILLS), colour, other, rng.uniform(0.1, 0.4))


def shifted_object_style(
    rng: np.random.Generator, background: Style, *, similar: bool, solid: bool = False
) -> Style:
    """A pastel object fill (as :func:`~segany.data.textures.object_style`): with
    ``similar``, colours near the background's and a pattern of another kind."""
    if similar:
        colour = nearby_colour(rng, background.colour_a, 30)
        weights = {k: v for k, v in _OBJECT_FILLS.items() if k not in ("solid", background.kind)}
    else:
        colour = pastel_colour(rng, background.colour_a)
        weights = _OBJECT_FILLS
    other = nearby_colour(rng, colour, rng.uniform(30, 80))
    if solid:
        return ShiftedStyle("solid", colour, other)
    mottle = rng.uniform(0, 0.3) if rng.random() < 0.5 else 0.0
    kind = _pick(rng, weights)
    if rng.random() < CAMOUFLAGE_PROBABILITY:
        b = background
        return ShiftedStyle(b.kind, b.colour_a, b.colour_b, b.mottle, camouflage=True)
    return ShiftedStyle(kind, colour, other, mottle)


def shifted_part_style(rng: np.random.Generator, parent: Style) -> Style:
    """A part's fill: another pastel colour or another pattern than its parent's."""
    if rng.random() < 0.5:
        colour, weights = pastel_colour(rng, parent.colour_a), _OBJECT_FILLS
    else:
        colour = nearby_colour(rng, parent.colour_a, 40)
        weights = {k: v for k, v in _OBJECT_FILLS.items() if k != parent.kind}
    other = nearby_colour(rng, colour, rng.uniform(30, 80))
    return ShiftedStyle(_pick(rng, weights), colour, other, 0.0)


def shifted_shape(
    kind: str,
    rng: np.random.Generator,
    cy: float,
    cx: float,
    radius: float,
    height: int,
    width: int,
    thin_width: tuple[int, int] = (2, 6),
) -> Region | None:
    """Rasterise a shape of one of :data:`SHIFTED_SHAPE_KINDS` or of
    :data:`~segany.data.shapes.SHAPE_KINDS` (as :func:`~segany.data.shapes.rasterize_shape`,
    whose arguments it takes)."""
    if kind in SHAPE_KINDS:
        return rasterize_shape(kind, rng, cy, cx, radius, height, width, thin_width)
    radius = max(radius, 1.5)
    if kind == "cross":
        return polygon_region(_placed(rng, cx, cy, radius, _cross(rng)), height, width)
    if kind == "arrow":
        return polygon_region(_placed(rng, cx, cy, radius, _arrow(rng)), height, width)
    if kind == "gear":
        gear = polygon_region(_placed(rng, cx, cy, radius, _gear(rng)), height, width)
        if gear is None or rng.random() < 0.5:
            return gear
        hole = radius * rng.uniform(0.15, 0.35)
        return _cut(gear, ellipse_region(cx, cy, hole, hole, 0.0, height, width))
    if kind == "crescent":
        ratio, angle = rng.uniform(0.6, 1.0), rng.uniform(0, math.pi)
        outer = ellipse_region(cx, cy, radius, radius * ratio, angle, height, width)
        if outer is None:
            return None
        turn, shift = rng.uniform(0, 2 * math.pi), radius * rng.uniform(0.3, 0.6)
        iy, ix = cy + shift * math.sin(turn), cx + shift * math.cos(turn)
        inner = ellipse_region(ix, iy, radius * 0.9, radius * ratio * 0.9, angle, height, width)
        return _cut(outer, inner)
    raise ValueError(f"unknown shape kind {kind!r}")


def draw_outlines(
    rng: np.random.Generator,
    canvas: Canvas,
    region: Region,
    labels: npt.NDArray[np.integer],
    styles: Sequence[Style],
) -> None:
    """Ink the edges of an object just placed on ``canvas`` (always when it is
    camouflaged, else with probability :data:`OUTLINE_PROBABILITY`): a dark line 1-3 px
    wide inside its outer edge and along the boundaries between its parts.

    Args:
        rng: The scene's generator.
        canvas: The canvas the object was placed on (its image is painted in place).
        region: The object's region.
        labels: ``hxw`` local node ids of the object (-1 outside), as given to
            :meth:`~segany.data.canvas.Canvas.place`.
        styles: The fills of its nodes (the object's first).
    """
    camouflaged = isinstance(styles[0], ShiftedStyle) and styles[0].camouflage
    if not camouflaged and rng.random() >= OUTLINE_PROBABILITY:
        return
    reach, colour = int(rng.integers(1, 4)), ink_colour(rng)
    ids = Image.fromarray((labels + 1).astype(np.uint8))  # 0: outside the object
    low, high = ids, ids
    for _ in range(reach):  # a square window of side 2 * reach + 1
        low, high = low.filter(ImageFilter.MinFilter(3)), high.filter(ImageFilter.MaxFilter(3))
    edge = (np.asarray(low) != np.asarray(high)) & region.mask
    image = canvas.image[region.slices]
    image[edge] = colour.astype(np.uint8)


def _pattern(rng: np.random.Generator, kind: str, height: int, width: int) -> np.ndarray:
    """An ``HxW`` float32 pattern in [0, 1] of one of :data:`SHIFTED_TEXTURE_KINDS`."""
    angle = rng.uniform(0, math.pi)
    cos, sin = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    u, v = xs * cos + ys * sin, ys * cos - xs * sin
    if kind == "dots":
        period = np.float32(rng.uniform(6, 24))
        size = np.float32(rng.uniform(0.2, 0.45))
        du, dv = u / period, v / period
        du, dv = du - np.round(du), dv - np.round(dv)
        return (du * du + dv * dv < size * size).astype(np.float32)
    if kind == "waves":
        period, wave = np.float32(rng.uniform(5, 24)), np.float32(rng.uniform(10, 60))
        amplitude = np.float32(rng.uniform(0.3, 1.5))
        phase = u / period + amplitude * np.sin(v * np.float32(2 * math.pi) / wave)
        return np.float32(0.5) + np.float32(0.5) * np.sin(phase * np.float32(2 * math.pi))
    if kind == "hatch":
        period, line = np.float32(rng.uniform(4, 14)), np.float32(rng.uniform(0.15, 0.35))
        across = np.abs(u / period - np.round(u / period)) < line / 2
        along = np.abs(v / period - np.round(v / period)) < line / 2
        return (~(across | along)).astype(np.float32)
    if kind == "rings":
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        distance = np.sqrt((ys - np.float32(cy)) ** 2 + (xs - np.float32(cx)) ** 2)
        period = np.float32(rng.uniform(5, 20))
        return ((distance / period) % 1 < 0.5).astype(np.float32)
    raise ValueError(f"unknown texture kind {kind!r}; expected one of {SHIFTED_TEXTURE_KINDS}")


def _cross(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """A plus sign's 12 vertices (unit radius): arms of random lengths and half-width."""
    t = rng.uniform(0.18, 0.4)
    right, up, left, down = rng.uniform(0.6, 1.0, 4)
    return np.array([
        (t, -up), (t, -t), (right, -t), (right, t), (t, t), (t, down),
        (-t, down), (-t, t), (-left, t), (-left, -t), (-t, -t), (-t, -up),
    ])  # fmt: skip


def _arrow(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """An arrow's 7 vertices (unit radius), pointing along +x."""
    shaft, head = rng.uniform(0.12, 0.3), rng.uniform(0.4, 0.8)
    neck = 1 - 2 * rng.uniform(0.25, 0.45)  # where the head starts
    return np.array([
        (-1, -shaft), (neck, -shaft), (neck, -head), (1, 0), (neck, head), (neck, shaft),
        (-1, shaft),
    ])  # fmt: skip


def _gear(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """A gear's vertices (unit radius): 6 to 14 flat-topped teeth on a disc."""
    teeth, inner = int(rng.integers(6, 15)), rng.uniform(0.65, 0.85)
    step = 2 * math.pi / teeth
    offsets = np.array([-0.3, -0.15, 0.15, 0.3]) * step
    radii = np.array([inner, 1.0, 1.0, inner])
    angles = (np.arange(teeth)[:, None] * step + offsets).ravel()
    rho = np.tile(radii, teeth)
    return np.stack([rho * np.cos(angles), rho * np.sin(angles)], axis=1)


def _placed(
    rng: np.random.Generator, cx: float, cy: float, radius: float, unit: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """``Nx2`` unit-radius vertices squashed (0.6-1), rotated, scaled and moved to (cx, cy)."""
    squash, turn = rng.uniform(0.6, 1.0), rng.uniform(0, 2 * math.pi)
    x, y = unit[:, 0] * radius, unit[:, 1] * radius * squash
    cos, sin = math.cos(turn), math.sin(turn)
    return np.stack([cx + x * cos - y * sin, cy + x * sin + y * cos], axis=1)


def _cut(outer: Region, inner: Region | None) -> Region | None:
    """``outer`` with ``inner`` removed where they overlap (None when nothing is left)."""
    mask = outer.mask.copy()
    if inner is not None:
        y0, y1 = max(inner.y0, outer.y0), min(inner.y1, outer.y1)
        x0, x1 = max(inner.x0, outer.x0), min(inner.x1, outer.x1)
        if y1 > y0 and x1 > x0:
            hole = inner.mask[y0 - inner.y0 : y1 - inner.y0, x0 - inner.x0 : x1 - inner.x0]
            mask[y0 - outer.y0 : y1 - outer.y0, x0 - outer.x0 : x1 - outer.x0] &= ~hole
    return Region(mask, outer.y0, outer.x0) if mask.any() else None


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    """A key of ``weights`` drawn with probability proportional to its weight."""
    names = list(weights)
    p = np.array([weights[n] for n in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]
