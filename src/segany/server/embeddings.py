"""The on-disk embedding cache: one encoder run per image and model, ever.

An entry is keyed by the image file's sha256 and the model's weights key (the sha256 of
its weights), and lives in ``embeddings/<weights[:16]>/<image[:2]>/<image>``: ``.f32``
holds the ``1xCxhxw`` float32 embedding (little-endian, C order, as a browser's
``Float32Array`` reads it) and ``.json`` its metadata. The JSON is written last, so an
entry exists exactly when its ``.json`` does; both writes are atomic. Anything that can
encode (the server, later a Ray job) fills the same cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segany.embedding import Embedding
from segany.fileio import write_atomic

__all__ = ["EmbeddingCache"]


class EmbeddingCache:
    """Embeddings of one model's weights under ``root`` (the data dir's ``embeddings/``)."""

    def __init__(self, root: Path, weights_key: str, model_name: str) -> None:
        self.folder = root / weights_key[:16]
        self.weights_key = weights_key
        self.model_name = model_name

    def _base(self, image_sha: str) -> Path:
        if len(image_sha) != 64 or any(c not in "0123456789abcdef" for c in image_sha):
            raise ValueError(f"not a sha256: {image_sha!r}")
        return self.folder / image_sha[:2] / image_sha

    def tensor_path(self, image_sha: str) -> Path:
        return self._base(image_sha).with_suffix(".f32")

    def metadata(self, image_sha: str) -> dict[str, Any] | None:
        """The entry's metadata, or None when the image is not cached."""
        try:
            data: dict[str, Any] = json.loads(
                self._base(image_sha).with_suffix(".json").read_text()
            )
        except (OSError, ValueError):
            return None
        return data if data.get("weights_sha256") == self.weights_key else None

    def get(self, image_sha: str) -> Embedding | None:
        meta = self.metadata(image_sha)
        if meta is None:
            return None
        try:
            flat = np.fromfile(self.tensor_path(image_sha), dtype="<f4")
            features = torch.from_numpy(flat.reshape(meta["shape"]))
        except (OSError, ValueError):
            return None
        return Embedding(
            features=features,
            original_size=tuple(meta["original_size"]),
            input_size=tuple(meta["input_size"]),
            key=image_sha,
        )

    def put(self, image_sha: str, embedding: Embedding) -> dict[str, Any]:
        """Store ``embedding`` for ``image_sha``; returns its metadata."""
        array = embedding.features.detach().float().cpu().numpy().astype("<f4", copy=False)
        write_atomic(self.tensor_path(image_sha), np.ascontiguousarray(array).tobytes())
        meta = {
            "image_sha256": image_sha,
            "model": self.model_name,
            "weights_sha256": self.weights_key,
            "shape": list(array.shape),
            "dtype": "float32",
            "original_size": list(embedding.original_size),
            "input_size": list(embedding.input_size),
        }
        write_atomic(self._base(image_sha).with_suffix(".json"), json.dumps(meta).encode())
        return meta
