"""Checks of MaskGenerator's options, and the point grids they describe."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from .grid import build_all_layer_point_grids

__all__ = ["STRATEGIES", "check_int", "point_grids_for"]

STRATEGIES = ("grid", "objects")


def check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}; got {value!r}")


def point_grids_for(
    points_per_side: int | None,
    point_grids: Sequence[npt.ArrayLike] | None,
    crop_n_layers: int,
    downscale: int,
) -> list[np.ndarray]:
    """The point grid of every crop layer, from ``points_per_side`` or explicit grids."""
    if (points_per_side is None) == (point_grids is None):
        raise InputError("give exactly one of points_per_side and point_grids")
    if points_per_side is not None:
        check_int("points_per_side", points_per_side, 1)
        return build_all_layer_point_grids(int(points_per_side), crop_n_layers, downscale)
    assert point_grids is not None
    grids = [np.asarray(grid, dtype=np.float64) for grid in point_grids]
    if len(grids) < crop_n_layers + 1:
        raise InputError(
            f"point_grids has {len(grids)} grids but crop_n_layers={crop_n_layers} needs "
            f"{crop_n_layers + 1} (one per layer, layer 0 = the whole image)"
        )
    for layer, grid in enumerate(grids):
        if grid.ndim != 2 or grid.shape[1] != 2 or len(grid) == 0:
            raise InputError(f"point_grids[{layer}] must be Nx2 with N >= 1; got {grid.shape}")
        if not np.all((grid >= 0) & (grid <= 1)):
            raise InputError(f"point_grids[{layer}] must be normalised to [0, 1]")
    return grids
