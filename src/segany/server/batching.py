"""Decoding the prompts of many requests on one image in one decoder call.

Under load, several clients wait on the model at once, often on the same image. Each
request still enters the bounded queue as its own job; when one of them runs, it takes
every waiting request on the same image whose prompts have the same shape (number of
points, box or not, multimask or not) and decodes them together as a ``BxNx2`` batch,
like the official predictor's ``predict_torch``. The others' jobs then find their answer
ready. Each request's prompts are checked on their own, so a bad one fails alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from segany.embedding import Embedding
from segany.predictor import Predictor

__all__ = ["DecodeBatcher", "DecodeRequest"]

#: logits CxHxW (float32, the image's size) and predicted IoUs C of one request
Answer = tuple[np.ndarray, np.ndarray]


@dataclass(eq=False)
class DecodeRequest:
    """One request's prompts in image pixels: points Nx2 with N labels, and/or a box."""

    image_sha: str
    path: Path
    points: list[list[float]] | None
    labels: list[int] | None
    box: list[float] | None
    multimask: bool
    answer: Future[Answer] = field(default_factory=Future)

    @property
    def key(self) -> tuple[object, ...]:
        """Requests with equal keys can share a decoder call."""
        points = len(self.points) if isinstance(self.points, list) else -1
        return (self.image_sha, self.multimask, points, self.box is not None)


class DecodeBatcher:
    """Pending requests, and the batched decoding of those that fit together."""

    def __init__(
        self,
        predictor: Predictor,
        embedding_of: Callable[[str, Path], Embedding],
        max_batch: int = 8,
    ) -> None:
        self.predictor = predictor
        self.embedding_of = embedding_of
        self.max_batch = max_batch
        self.batches = 0  # decoder calls made
        self._pending: list[DecodeRequest] = []
        self._lock = threading.Lock()

    def add(self, request: DecodeRequest) -> None:
        with self._lock:
            self._pending.append(request)

    def discard(self, request: DecodeRequest) -> None:
        """Forget a request that will not be run (it timed out or was refused)."""
        with self._lock:
            self._pending = [r for r in self._pending if r is not request]

    def run(self, request: DecodeRequest) -> Answer:
        """On the model's thread: ``request``'s answer, decoding it (and its batch) now
        unless an earlier batch already did."""
        if not request.answer.done():
            self._decode(self._take(request))
        return request.answer.result()

    def _take(self, request: DecodeRequest) -> list[DecodeRequest]:
        with self._lock:
            batch = [request]
            batch += [
                r
                for r in self._pending
                if r is not request and r.key == request.key and not r.answer.done()
            ][: self.max_batch - 1]
            self._pending = [r for r in self._pending if r not in batch]
        return batch

    def _decode(self, batch: list[DecodeRequest]) -> None:
        first = batch[0]
        try:
            embedding = self.embedding_of(first.image_sha, first.path)
        except BaseException as exc:
            for request in batch:
                request.answer.set_exception(exc)
            return
        predictor = self.predictor
        with predictor.viewing(embedding), torch.inference_mode():
            ready, parts = [], []
            for request in batch:
                try:
                    prompts = predictor.check_prompts(request.points, request.labels, request.box)
                except BaseException as exc:  # this request's own input error
                    request.answer.set_exception(exc)
                    continue
                ready.append(request)
                parts.append(predictor.prompt_tensors(prompts))
            if not ready:
                return
            try:
                tensors = [None if p[0] is None else torch.cat(p) for p in zip(*parts, strict=True)]
                logits, scores, _ = predictor.predict_torch(
                    tensors[0], tensors[1], tensors[2], None, first.multimask, return_logits=True
                )
            except BaseException as exc:
                for request in ready:
                    request.answer.set_exception(exc)
                return
        self.batches += 1
        for i, request in enumerate(ready):
            request.answer.set_result((logits[i].numpy(), scores[i].float().numpy()))
