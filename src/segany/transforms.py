"""Resizing images and prompts to the encoder frame (longest side = image size).

Matches the official ``ResizeLongestSide``: PIL bilinear resize of the uint8 image, and
coordinates scaled separately along x and y by the rounded new size.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def preprocess_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(h, w) of an image resized so that its longer side is ``long_side``."""
    scale = long_side * 1.0 / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


class ResizeLongestSide:
    """Resize images and their prompt coordinates to a longest side of ``target_length``."""

    def __init__(self, target_length: int) -> None:
        self.target_length = target_length

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 -> hxwx3 uint8 (bilinear, as PIL does it)."""
        new_h, new_w = preprocess_shape(image.shape[0], image.shape[1], self.target_length)
        resized = Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR)
        return np.asarray(resized)

    def apply_coords(self, coords: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """...x2 (x, y) coordinates in the original image -> float64 in the resized one."""
        old_h, old_w = original_size
        new_h, new_w = preprocess_shape(old_h, old_w, self.target_length)
        out = np.array(coords, dtype=np.float64, copy=True)
        out[..., 0] = out[..., 0] * (new_w / old_w)
        out[..., 1] = out[..., 1] * (new_h / old_h)
        return out

    def apply_boxes(self, boxes: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """Bx4 XYXY boxes in the original image -> Bx4 float64 in the resized one."""
        corners = self.apply_coords(np.asarray(boxes).reshape(-1, 2, 2), original_size)
        return corners.reshape(-1, 4)
