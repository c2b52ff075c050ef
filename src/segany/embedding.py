"""An encoded image and the LRU caches of them that a predictor keeps."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class Embedding:
    """An image encoded for prompting.

    features: 1xCxhxw image embedding (1x256x64x64 for the published models);
    original_size: (H, W) of the image; input_size: (h, w) after resizing, before padding;
    key: a digest of the image's content (:func:`image_key`).
    """

    features: torch.Tensor
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    key: str


def remember(cache: OrderedDict[K, V], key: K, value: V, size: int) -> None:
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
