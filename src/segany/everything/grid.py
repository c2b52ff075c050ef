"""Where the automatic mask generator looks: point grids and crop boxes.

The layout is exactly the official ``SamAutomaticMaskGenerator``'s:

* a grid of ``n x n`` points per crop, normalised to ``[0, 1]``, with points at the centres
  of an ``n x n`` tiling (``linspace(1/(2n), 1 - 1/(2n), n)`` along each axis), x varying
  fastest;
* crop layer 0 is the whole image; layer ``i >= 1`` tiles the image with ``2^i x 2^i``
  overlapping crops, listed column by column (all crops of the first column of ``x0``
  first), and uses ``points_per_side / downscale^i`` points per side.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from segany.errors import InputError

__all__ = [
    "build_all_layer_point_grids",
    "build_point_grid",
    "crop_boxes_for_image",
    "layer_points_per_side",
]

FloatArray = npt.NDArray[np.float64]


def build_point_grid(points_per_side: int) -> FloatArray:
    """An evenly spaced ``n x n`` grid of points in ``[0, 1] x [0, 1]``.

    Args:
        points_per_side: ``n >= 1``.

    Returns:
        ``(n*n)x2`` float64 array of (x, y), row by row (x varies fastest).

    Raises:
        InputError: ``points_per_side < 1``.
    """
    if points_per_side < 1:
        raise InputError(f"a point grid needs at least 1 point per side; got {points_per_side}")
    offset = 1 / (2 * points_per_side)
    side = np.linspace(offset, 1 - offset, points_per_side)
    xs = np.tile(side[None, :], (points_per_side, 1))
    ys = np.tile(side[:, None], (1, points_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def layer_points_per_side(points_per_side: int, layer: int, downscale: int) -> int:
    """Points per side in crop layer ``layer``: ``int(points_per_side / downscale**layer)``."""
    return int(points_per_side / (downscale**layer))


def build_all_layer_point_grids(
    points_per_side: int, n_layers: int, downscale: int
) -> list[FloatArray]:
    """One point grid per crop layer (layer 0 = the whole image, then ``n_layers`` more).

    Args:
        points_per_side: points per side in layer 0.
        n_layers: number of crop layers after layer 0.
        downscale: layer ``i`` has ``int(points_per_side / downscale**i)`` points per side.

    Returns:
        ``n_layers + 1`` arrays, each ``Nx2`` float64 in ``[0, 1]``.

    Raises:
        InputError: a layer would get no points at all.
    """
    grids = []
    for layer in range(n_layers + 1):
        per_side = layer_points_per_side(points_per_side, layer, downscale)
        if per_side < 1:
            raise InputError(
                f"crop layer {layer} would get no points: points_per_side={points_per_side} "
                f"/ crop_n_points_downscale_factor={downscale}**{layer} < 1; use fewer crop "
                "layers or a smaller downscale factor"
            )
        grids.append(build_point_grid(per_side))
    return grids


def _crop_length(length: int, n_crops: int, overlap: int) -> int:
    """Side of each of ``n_crops`` crops that cover ``length`` pixels with ``overlap``."""
    return int(math.ceil((overlap * (n_crops - 1) + length) / n_crops))


def crop_boxes_for_image(
    image_size: tuple[int, int], n_layers: int, overlap_ratio: float
) -> tuple[list[list[int]], list[int]]:
    """The crops of all layers, in the official order.

    Layer ``i >= 1`` has ``2^i`` crops per side that overlap by
    ``int(overlap_ratio * short_side * 2 / 2^i)`` pixels; crops at the right and bottom
    are clipped to the image.

    Args:
        image_size: ``(H, W)`` of the image.
        n_layers: crop layers after layer 0 (the whole image).
        overlap_ratio: overlap of layer 1's crops as a fraction of the image's short side.

    Returns:
        (boxes, layers): XYXY integer boxes ``[x0, y0, x1, y1]`` (``x1``, ``y1`` exclusive)
        and the layer of each box; the first box is always ``[0, 0, W, H]``.
    """
    height, width = image_size
    short_side = min(height, width)
    boxes: list[list[int]] = [[0, 0, width, height]]
    layers = [0]
    for layer in range(1, n_layers + 1):
        per_side = 2**layer
        overlap = int(overlap_ratio * short_side * (2 / per_side))
        crop_w = _crop_length(width, per_side, overlap)
        crop_h = _crop_length(height, per_side, overlap)
        x0s = [int((crop_w - overlap) * i) for i in range(per_side)]
        y0s = [int((crop_h - overlap) * i) for i in range(per_side)]
        for x0 in x0s:  # x-major, as itertools.product(x0s, y0s) in the official code
            for y0 in y0s:
                boxes.append([x0, y0, min(x0 + crop_w, width), min(y0 + crop_h, height)])
                layers.append(layer)
    return boxes, layers
