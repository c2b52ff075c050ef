"""Scene domains: which shapes, fills and colours :func:`~segany.data.scenes.generate_scene`
draws (``SceneConfig.domain``).

* ``"default"``: the scenes the bundled model learnt from (:mod:`segany.data.shapes`,
  :mod:`segany.data.textures`); generated bit for bit as before domains existed.
* ``"shifted"``: crosses, crescents, gears and arrows, dot/wave/hatch/ring fills, a pastel
  palette and ink outlines (:mod:`segany.data.shifted`): a domain the bundled model never
  saw, to measure what training on annotations of new images gains.

A :class:`Domain` only supplies the draws; the scene's structure (sizes, counts, parts,
occlusion, ground truth) is the same in every domain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from segany.data.canvas import Canvas
from segany.data.shapes import SHAPE_KINDS, Region, rasterize_shape
from segany.data.shifted import (
    SHIFTED_SHAPE_WEIGHTS,
    draw_outlines,
    shifted_background_style,
    shifted_object_style,
    shifted_part_style,
    shifted_shape,
)
from segany.data.textures import Style, background_style, object_style, part_style

__all__ = ["DOMAINS", "Domain", "get_domain"]


class ObjectStyle(Protocol):
    """:func:`~segany.data.textures.object_style`'s signature."""

    def __call__(
        self, rng: np.random.Generator, background: Style, *, similar: bool, solid: bool = False
    ) -> Style: ...


class Rasterize(Protocol):
    """:func:`~segany.data.shapes.rasterize_shape`'s signature."""

    def __call__(
        self,
        kind: str,
        rng: np.random.Generator,
        cy: float,
        cx: float,
        radius: float,
        height: int,
        width: int,
        thin_width: tuple[int, int] = (2, 6),
    ) -> Region | None: ...


Finish = Callable[
    [np.random.Generator, Canvas, Region, npt.NDArray[np.integer], Sequence[Style]], None
]


@dataclass(frozen=True)
class Domain:
    """The draws of one scene domain.

    Attributes:
        name: The domain's name (``SceneConfig.domain``).
        shape_weights: Probability of each shape kind of an object (in a fixed order: the
            order is part of what a seed draws).
        rasterize: Draws a shape of one of ``shape_weights``' kinds.
        background_style, object_style, part_style: Draw the fills of the background, of an
            object (or clutter, ``solid=True``) and of a part.
        finish: Called after each object is placed, with the scene's generator, the canvas,
            the object's region, local labels and fills (the ink outlines of the shifted
            domain); ``None`` draws nothing.
    """

    name: str
    shape_weights: dict[str, float]
    rasterize: Rasterize
    background_style: Callable[[np.random.Generator], Style]
    object_style: ObjectStyle
    part_style: Callable[[np.random.Generator, Style], Style]
    finish: Finish | None = None


# Probability of each of SHAPE_KINDS: polygon, ellipse, star, blob, thin, ring.
_DEFAULT_WEIGHTS = dict(zip(SHAPE_KINDS, (0.3, 0.15, 0.1, 0.15, 0.15, 0.15), strict=True))

#: The domains by name.
DOMAINS: dict[str, Domain] = {
    "default": Domain(
        "default", _DEFAULT_WEIGHTS, rasterize_shape, background_style, object_style, part_style
    ),
    "shifted": Domain(
        "shifted",
        SHIFTED_SHAPE_WEIGHTS,
        shifted_shape,
        shifted_background_style,
        shifted_object_style,
        shifted_part_style,
        draw_outlines,
    ),
}


def get_domain(name: str) -> Domain:
    """The domain called ``name`` (``KeyError`` naming the known ones otherwise)."""
    try:
        return DOMAINS[name]
    except KeyError:
        raise KeyError(f"unknown scene domain {name!r}; known: {', '.join(DOMAINS)}") from None
