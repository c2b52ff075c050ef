"""An encoded image and the LRU caches of them that a predictor keeps."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

K = TypeVar("K")


@dataclass(frozen=True)
class Embedding:
    """An image encoded for prompting, with what the mask stages read beside it."""

    features: torch.Tensor  # 1xCxhxw
    pixels: torch.Tensor | None  # 1x(3·s²)xLxL, the refiner's view of the image
    image: np.ndarray | None  # HxWx3 uint8, kept for graph-cut snapping
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    key: str  # of the image's content


def remember(cache: OrderedDict[K, Embedding], key: K, value: Embedding, size: int) -> None:
    """Put ``value`` in the LRU ``cache`` (most recent last) of at most ``size`` entries."""
    if size > 0:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > size:
            cache.popitem(last=False)


def image_key(image: np.ndarray) -> str:
    """A digest of ``image``'s shape and pixels (the key of cached embeddings)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr(image.shape).encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()
