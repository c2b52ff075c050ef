"""The model behind the server: one worker thread, a bounded queue, an embedding cache.

The event loop never runs the model. Every encoder or decoder call is a job for one worker
thread (the model is not shared between threads; torch uses the cores inside each call).
Jobs from requests wait in a queue of bounded length: a request that finds it full is
answered 503 at once, and one that waits longer than the timeout is answered 503 too.
Jobs that encode a project's next images ahead of time run only when no request is
waiting, and are not counted against the bound.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from starlette.concurrency import run_in_threadpool

from segany.data.images import load_image
from segany.data.rle import mask_to_rle
from segany.embedding import Embedding, remember
from segany.server.batching import DecodeBatcher, DecodeRequest
from segany.server.config import ServerConfig
from segany.server.embeddings import EmbeddingCache
from segany.server.errors import BusyError

__all__ = ["InferenceQueue", "ModelService"]

T = TypeVar("T")
URGENT, BACKGROUND = 0, 1
STABILITY_OFFSET = 1.0  # SAM's automatic generator's offset


class InferenceQueue:
    """Runs jobs on one thread, requests before background work, at most ``capacity``
    requests waiting or running at once."""

    def __init__(self, capacity: int, timeout_s: float) -> None:
        self.capacity = capacity
        self.timeout_s = timeout_s
        self.waiting = 0  # requests queued or running
        self.refused = 0  # requests answered 503 (full or timed out)
        self._lock = threading.Lock()
        self._jobs: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._thread = threading.Thread(target=self._work, name="segany-inference", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], T], *, background: bool = False) -> Future[T]:
        if not background:
            with self._lock:
                if self.waiting >= self.capacity:
                    self.refused += 1
                    raise BusyError(f"the model is busy ({self.waiting} requests waiting); retry")
                self.waiting += 1
        future: Future[T] = Future()
        priority = BACKGROUND if background else URGENT
        self._jobs.put((priority, next(self._order), (job, future, background)))
        return future

    async def run(self, job: Callable[[], T]) -> T:
        """``job``'s result, computed on the worker thread, awaited without blocking."""
        future = self.submit(job)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)
        except TimeoutError:
            with self._lock:
                self.refused += 1
            raise BusyError(
                f"the model did not answer within {self.timeout_s:g} s; retry"
            ) from None

    @property
    def idle(self) -> bool:
        return self._jobs.empty() and self.waiting == 0

    def close(self) -> None:
        self._jobs.put((-1, -1, None))
        self._thread.join(timeout=10)

    def _work(self) -> None:
        while True:
            _, _, item = self._jobs.get()
            if item is None:
                return
            job, future, background = item
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(job())
                    except BaseException as exc:  # handed to the awaiting request
                        future.set_exception(exc)
            finally:
                if not background:
                    with self._lock:
                        self.waiting -= 1


class ModelService:
    """The served model: embeddings (cached on disk), decoding, the browser's decoder."""

    def __init__(self, config: ServerConfig, memory_cache: int = 4) -> None:
        self.config = config
        self.queue = InferenceQueue(config.queue_size, config.inference_timeout_s)
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._memory: OrderedDict[str, Embedding] = OrderedDict()
        self._memory_size = memory_cache
        self._encoding: dict[str, Future[Embedding]] = {}
        self._ahead: set[str] = set()  # images prefetch has seen cached or queued
        self._lock = threading.Lock()
        self.queue.submit(self._load, background=True)

    def _load(self) -> None:
        """Build the model and predictor (on the worker: torch stays on one thread)."""
        from segany.engine.onnx_export import model_sha256
        from segany.loading import load_model
        from segany.predictor import Predictor

        try:
            self.model = load_model(self.config.model, self.config.checkpoint, progress=False)
            self.predictor = Predictor(self.model, cache_size=0)
            self.batcher = DecodeBatcher(self.predictor, self._embedding)
            self.weights_key = self.model.weights_sha256 or model_sha256(self.model)
            self.cache = EmbeddingCache(
                self.config.embeddings_dir, self.weights_key, self.model.name
            )
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.ready.set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self.ready.wait(timeout) and self.error is None

    def describe(self) -> dict[str, Any]:
        """What a browser decoder needs to know about the model."""
        model = self.model
        return {
            "name": model.name,
            "weights_sha256": self.weights_key,
            "input_size": model.image_size,
            "embedding": [
                model.prompt_encoder.embed_dim,
                *model.prompt_encoder.image_embedding_size,
            ],
            "mask_threshold": float(model.mask_threshold),
            "num_multimask_outputs": model.mask_decoder.num_multimask_outputs,
        }

    # ------------------------------------------------------------- embeddings
    def cached(self, image_sha: str) -> dict[str, Any] | None:
        return self.cache.metadata(image_sha)

    def _embedding(self, image_sha: str, path: Path) -> Embedding:
        """On the worker: the embedding from memory, disk, or the encoder (then stored)."""
        found = self._memory.get(image_sha) or self.cache.get(image_sha)
        if found is None:
            array = load_image(path)
            found = self.predictor.encode(array, key=image_sha)
            self.cache.put(image_sha, found)
        remember(self._memory, image_sha, found, self._memory_size)
        return found

    def _encode_once(self, image_sha: str, path: Path, background: bool) -> Future[Embedding]:
        """One encoder run per image, however many ask for it at once."""
        with self._lock:
            running = self._encoding.get(image_sha)
            if running is not None and not running.done():
                return running
            future = self.queue.submit(
                lambda: self._embedding(image_sha, path), background=background
            )
            self._encoding[image_sha] = future
            future.add_done_callback(lambda _: self._forget(image_sha, future))
            return future

    def _forget(self, image_sha: str, future: Future[Embedding]) -> None:
        with self._lock:
            if self._encoding.get(image_sha) is future:
                del self._encoding[image_sha]

    async def embedding(self, image_sha: str, path: Path) -> dict[str, Any]:
        """The metadata of ``image_sha``'s cached embedding, encoding it first if needed."""
        meta = self.cached(image_sha)
        if meta is not None:
            return meta
        await self.queue.run(lambda: self._embedding(image_sha, path))
        found = self.cached(image_sha)
        assert found is not None
        return found

    def prefetch(self, images: list[tuple[str, Path]]) -> int:
        """Encode ``(sha256, path)`` images not cached yet, when the model is idle.

        Called on every decode: an image found cached or queued once is not looked up on
        disk again.
        """
        started = 0
        for image_sha, path in images:
            if image_sha in self._ahead:
                continue
            self._ahead.add(image_sha)
            if self.cached(image_sha) is None:
                self._encode_once(image_sha, path, background=True)
                started += 1
        return started

    # --------------------------------------------------------------- decoding
    async def decode(
        self,
        image_sha: str,
        path: Path,
        points: list[list[float]] | None,
        labels: list[int] | None,
        box: list[float] | None,
        multimask: bool,
    ) -> dict[str, Any]:
        """Masks (COCO RLE), predicted IoUs and stability scores for one prompt."""

        request = DecodeRequest(image_sha, path, points, labels, box, multimask)
        self.batcher.add(request)
        try:
            logits, scores = await self.queue.run(lambda: self.batcher.run(request))
        finally:
            self.batcher.discard(request)
        # thresholds, stability and RLE off the model's thread: it goes on to the next job
        return await run_in_threadpool(self._answer, logits, scores)

    def _answer(self, logits: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
        from segany.everything.masks import stability_score

        threshold = float(self.model.mask_threshold)
        tensor = torch.from_numpy(logits)
        stability = stability_score(tensor, threshold, STABILITY_OFFSET).nan_to_num(0.0)
        masks = logits > threshold
        return {
            "masks": [mask_to_rle(m) for m in masks],
            "scores": [float(s) for s in scores],
            "stability_scores": [float(s) for s in stability],
            "best": int(np.argmax(scores)),
            "model": self.model.name,
            "weights_sha256": self.weights_key,
        }

    # ------------------------------------------------------ browser's decoder
    async def decoder_onnx(self) -> Path:
        """The served model's decoder as ONNX, exported once into the data dir (again when
        this segany writes a newer arrangement of the graph than the one there)."""
        from segany.engine.onnx_export import GRAPH_VERSION, export_onnx

        folder = self.config.models_dir / self.weights_key[:16]
        path = folder / "decoder.onnx"
        meta = folder / "metadata.json"
        current = (
            meta.exists() and json.loads(meta.read_text()).get("graph_version") == GRAPH_VERSION
        )
        if not current:
            await self.queue.run(lambda: export_onnx(self.model, folder, overwrite=True))
        return path

    def close(self) -> None:
        self.queue.close()
