"""Texture fills and colour choices for generated scenes.

A texture is a pattern ``p`` in ``[0, 1]`` (``hxw`` float32) mapped to colour as
``a + p * (b - a)`` for two RGB colours ``a`` and ``b``. Patterns:

* ``"solid"``: constant (only colour ``a``);
* ``"noise"``: smooth value noise (a random grid upsampled bicubically), one or two
  octaves;
* ``"stripes"``: parallel stripes at a random angle and period, hard-edged or soft;
* ``"gradient"``: a linear ramp at a random angle, or a radial one from a random centre;
* ``"checkers"``: a checkerboard rotated by a random angle.

Any pattern but ``"noise"`` may be mottled with a little value noise, so flat regions are
not perfectly flat. A :class:`Style` bundles a pattern kind, its colours and its mottle;
:func:`background_style`, :func:`object_style` and :func:`part_style` draw styles for the
scene's background, its objects (sometimes in colours close to the background's, so only
the texture tells them apart) and their parts (always differing from the parent in colour
or texture).

Fills are computed on a region's bounding box only, with broadcast operations, Pillow's
resampling and a colour lookup table, and without BLAS (whose threads cost more than the
work at these sizes): a ``100x100`` fill takes tens of microseconds, a ``512x512`` one
about a millisecond.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

__all__ = [
    "TEXTURE_KINDS",
    "Style",
    "background_style",
    "colour_map",
    "contrasting_colour",
    "nearby_colour",
    "object_style",
    "part_style",
    "random_colour",
    "render_texture",
    "value_noise",
]

#: Names of the texture patterns that :func:`render_texture` draws.
TEXTURE_KINDS: tuple[str, ...] = ("solid", "noise", "stripes", "gradient", "checkers")

Colour = npt.NDArray[np.float32]
"""An RGB colour: shape ``(3,)`` float32 with values in ``[0, 255]``."""


def random_colour(rng: np.random.Generator) -> Colour:
    """A random RGB colour: uniform hue, saturation in [0.05, 0.95], value in [0.15, 1]."""
    hue, sat, val = rng.random(), rng.uniform(0.05, 0.95), rng.uniform(0.15, 1.0)
    return np.array(colorsys.hsv_to_rgb(hue, sat, val), dtype=np.float32) * 255


def nearby_colour(rng: np.random.Generator, colour: Colour, spread: float) -> Colour:
    """``colour`` shifted by up to ``spread`` per channel (uniform), clipped to [0, 255]."""
    shifted = colour + rng.uniform(-spread, spread, 3).astype(np.float32)
    return np.clip(shifted, 0, 255).astype(np.float32)


def contrasting_colour(
    rng: np.random.Generator, colour: Colour, min_distance: float, tries: int = 8
) -> Colour:
    """A random colour at least ``min_distance`` (Euclidean, RGB) from ``colour``.

    Draws up to ``tries`` random colours and returns the first far enough away, or the
    farthest of them.
    """
    best, best_distance = colour, -1.0
    for _ in range(tries):
        candidate = random_colour(rng)
        distance = float(np.linalg.norm(candidate - colour))
        if distance >= min_distance:
            return candidate
        if distance > best_distance:
            best, best_distance = candidate, distance
    return best


def render_texture(
    rng: np.random.Generator,
    kind: str,
    height: int,
    width: int,
    colour_a: Colour,
    colour_b: Colour,
    *,
    mottle: float = 0.0,
) -> npt.NDArray[np.uint8]:
    """Render an ``HxWx3`` uint8 RGB texture of one of :data:`TEXTURE_KINDS`.

    Args:
        rng: Source of the pattern's random parameters (angle, period, noise values).
        kind: One of :data:`TEXTURE_KINDS`.
        height, width: Size of the fill in pixels.
        colour_a, colour_b: The pattern's two colours, ``(3,)`` float32 in [0, 255].
        mottle: Weight in [0, 1] of value noise blended into the pattern (ignored for
            ``"noise"``); with ``"solid"`` it shades between ``colour_a`` and ``colour_b``.

    Returns:
        ``HxWx3`` uint8 array (a view with a stride of 4 bytes per pixel, not C-contiguous,
        unless ``kind`` is ``"solid"`` without mottle).

    Raises:
        ValueError: ``kind`` is not a known texture (a programming error: callers pass
            names from :data:`TEXTURE_KINDS`).
    """
    if kind == "solid" and mottle <= 0:
        return np.broadcast_to(colour_a.astype(np.uint8), (height, width, 3)).copy()
    pattern = _pattern(rng, kind, height, width)
    if mottle > 0 and kind != "noise":
        noise = value_noise(rng, height, width, scale=rng.uniform(6, 30))
        pattern = pattern * np.float32(1 - mottle) + noise * np.float32(mottle)
    return colour_map(pattern, colour_a, colour_b)


def colour_map(
    pattern: npt.NDArray[np.float32], colour_a: Colour, colour_b: Colour
) -> npt.NDArray[np.uint8]:
    """An ``hxw`` pattern in [0, 1] coloured as ``a + p * (b - a)``: ``hxwx3`` uint8 (a
    view with a stride of 4 bytes per pixel, not C-contiguous)."""
    height, width = pattern.shape
    # Map the pattern through a 256-entry RGBA lookup table, packed as uint32 so the lookup
    # is a single take() of 4-byte items, much faster than float colour arithmetic
    # (docs/training.md, 'The scenes it learns from').
    levels = np.linspace(0, 1, 256, dtype=np.float32)[:, None]
    table = np.zeros((256, 4), dtype=np.uint8)
    table[:, :3] = np.clip(colour_a + levels * (colour_b - colour_a) + 0.5, 0, 255)
    index = (pattern * np.float32(255) + np.float32(0.5)).astype(np.uint8)
    packed = table.view(np.uint32).ravel().take(index)
    return packed.view(np.uint8).reshape(height, width, 4)[:, :, :3]


def value_noise(
    rng: np.random.Generator, height: int, width: int, scale: float, octaves: int = 1
) -> npt.NDArray[np.float32]:
    """Smooth value noise, ``HxW`` float32 stretched to fill [0, 1].

    Args:
        scale: Feature size in pixels (spacing of the random grid).
        octaves: Number of octaves; each further one has half the scale and half the weight.
    """
    total = np.zeros((height, width), dtype=np.float32)
    weight = 1.0
    for _ in range(octaves):
        total += np.float32(weight) * _noise_octave(rng, height, width, max(scale, 1.5))
        scale, weight = scale / 2, weight / 2
    low, high = float(total.min()), float(total.max())
    if high - low < 1e-6:
        return np.full((height, width), 0.5, dtype=np.float32)
    return (total - np.float32(low)) * np.float32(1 / (high - low))


def _noise_octave(
    rng: np.random.Generator, height: int, width: int, scale: float
) -> npt.NDArray[np.float32]:
    """One octave: a random grid with ``scale``-pixel spacing, upsampled bicubically.

    Pillow's resampling (single-threaded C) is used rather than an interpolation-matrix
    product, whose BLAS call spins up threads that cost more than the work at this size.
    """
    cells_y, cells_x = height / scale, width / scale
    grid = rng.random((int(cells_y) + 4, int(cells_x) + 4), dtype=np.float32)
    oy, ox = rng.uniform(0, 1, 2)
    box = (1 + ox, 1 + oy, 1 + ox + cells_x, 1 + oy + cells_y)
    image = Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC, box)
    return np.asarray(image)


def _pattern(rng: np.random.Generator, kind: str, height: int, width: int) -> np.ndarray:
    """An ``HxW`` float32 pattern in [0, 1] of the given kind."""
    if kind == "solid":
        return np.zeros((height, width), dtype=np.float32)
    if kind == "noise":
        scale = math.exp(rng.uniform(math.log(3), math.log(max(4.0, max(height, width) / 2))))
        return value_noise(rng, height, width, scale, octaves=int(rng.integers(1, 3)))
    angle = rng.uniform(0, math.pi)
    cos, sin = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    if kind == "stripes":
        period = np.float32(rng.uniform(3, 24))
        phase = (xs * cos + ys * sin) / period + np.float32(rng.random())
        phase -= np.floor(phase)
        if rng.random() < 0.5:
            duty = np.float32(rng.uniform(0.3, 0.7))
            return (phase < duty).astype(np.float32)
        return np.abs(phase * 2 - 1)  # triangle wave: soft stripes
    if kind == "gradient":
        if rng.random() < 0.6:
            ramp = xs * cos + ys * sin
        else:
            cy, cx = rng.uniform(0, height), rng.uniform(0, width)
            ramp = np.sqrt((ys - np.float32(cy)) ** 2 + (xs - np.float32(cx)) ** 2)
        low, high = float(ramp.min()), float(ramp.max())
        ramp = np.broadcast_to(ramp, (height, width))
        return (ramp - np.float32(low)) * np.float32(1 / max(high - low, 1e-6))
    if kind == "checkers":
        period = np.float32(rng.uniform(4, 28))
        u = np.floor((xs * cos + ys * sin) / period)
        v = np.floor((ys * cos - xs * sin) / period)
        return ((u + v) % 2).astype(np.float32)
    raise ValueError(f"unknown texture kind {kind!r}; expected one of {TEXTURE_KINDS}")


@dataclass(frozen=True)
class Style:
    """How a region is filled: a texture kind, its two colours and its mottle weight."""

    kind: str
    colour_a: Colour
    colour_b: Colour
    mottle: float = 0.0

    def render(self, rng: np.random.Generator, height: int, width: int) -> npt.NDArray[np.uint8]:
        """Render an ``HxWx3`` uint8 fill of this style (see :func:`render_texture`)."""
        return render_texture(
            rng, self.kind, height, width, self.colour_a, self.colour_b, mottle=self.mottle
        )


def background_style(rng: np.random.Generator) -> Style:
    """A random background: mostly noise or gradients, muted, always a little mottled."""
    kind = _pick(rng, {"noise": 0.4, "gradient": 0.25, "stripes": 0.1, "checkers": 0.1})
    colour = random_colour(rng)
    return Style(kind, colour, nearby_colour(rng, colour, 60), rng.uniform(0.15, 0.5))


def object_style(
    rng: np.random.Generator, background: Style, *, similar: bool, solid: bool = False
) -> Style:
    """A random object fill.

    Args:
        rng: Source of the choice.
        background: The scene's background style.
        similar: Take colours close to the background's and a patterned texture of
            another kind than the background's, so that only the texture sets the object
            apart.
        solid: Force a plain fill (used for small clutter).
    """
    if similar:
        colour = nearby_colour(rng, background.colour_a, 30)
        other = nearby_colour(rng, colour, 90)
        weights = {k: 1.0 for k in ("noise", "stripes", "checkers", "gradient")}
        weights.pop(background.kind, None)
    else:
        colour = random_colour(rng)
        if rng.random() < 0.3:
            other = contrasting_colour(rng, colour, 80)
        else:
            other = nearby_colour(rng, colour, rng.uniform(25, 90))
        weights = _OBJECT_KINDS
    if solid:
        return Style("solid", colour, other)
    mottle = rng.uniform(0, 0.35) if rng.random() < 0.6 else 0.0
    return Style(_pick(rng, weights), colour, other, mottle)


def part_style(rng: np.random.Generator, parent: Style) -> Style:
    """A fill for a part that differs visibly from its parent's, in colour or in texture."""
    if rng.random() < 0.5:
        colour = contrasting_colour(rng, parent.colour_a, 70)
        kind = _pick(rng, _OBJECT_KINDS)
    else:
        colour = nearby_colour(rng, parent.colour_a, 50)
        weights = {k: v for k, v in _OBJECT_KINDS.items() if k != parent.kind}
        kind = _pick(rng, weights)
    other = nearby_colour(rng, colour, rng.uniform(30, 90))
    return Style(kind, colour, other, rng.uniform(0, 0.3) if rng.random() < 0.5 else 0.0)


_OBJECT_KINDS = {"solid": 0.3, "noise": 0.25, "stripes": 0.15, "gradient": 0.15, "checkers": 0.15}


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    """A key of ``weights`` drawn with probability proportional to its weight."""
    names = list(weights)
    p = np.array([weights[n] for n in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]
