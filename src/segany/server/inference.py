"""The model behind the server: one worker thread, a bounded queue, an embedding cache.

The event loop never runs the model. Every encoder or decoder call is a job for one worker
thread (the model is not shared between threads; torch uses the cores inside each call).
Jobs from requests wait in a queue of bounded length: a request that finds it full is
answered 503 at once, and one that waits longer than the timeout is answered 503 too.
Jobs that encode a project's next images ahead of time, and the automatic stage's images
(:mod:`segany.server.jobs`), run only when no request is waiting, and are not counted
against the bound.

The weights served can change while the server runs (:mod:`segany.server.switching`):
:meth:`ModelService.use` swaps them on the worker thread, between two jobs, so every job
runs wholly on one version, and an answer names the weights that computed it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from starlette.concurrency import run_in_threadpool

from segany.data.images import load_image
from segany.data.rle import mask_to_rle
from segany.embedding import Embedding, image_key, remember
from segany.models.sam import Sam
from segany.predictor import Predictor
from segany.server.batching import DecodeBatcher, DecodeRequest
from segany.server.config import ServerConfig
from segany.server.embeddings import EmbeddingCache
from segany.server.errors import BusyError

__all__ = ["EmbeddedPredictor", "InferenceQueue", "ModelService", "Segmented"]

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

    def __init__(
        self,
        config: ServerConfig,
        memory_cache: int = 4,
        prepare: Callable[[ModelService], None] | None = None,
    ) -> None:
        """``prepare`` runs on the worker after the configured model is loaded and before
        the service is ready (the server puts it on the database's active version)."""
        self.config = config
        self.version: str | None = None  # the served version's label, when known
        self.source: Path | None = config.checkpoint  # the weights file (None: registry's)
        self._prepare = prepare
        self.queue = InferenceQueue(config.queue_size, config.inference_timeout_s)
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._memory: OrderedDict[str, Embedding] = OrderedDict()
        self._memory_size = memory_cache
        self._encoding: dict[str, Future[Embedding]] = {}
        self._ahead: set[str] = set()  # images prefetch has seen cached or queued
        # SegEvery's generator (and its predictor) by the options it was made with
        self._generators: dict[str, tuple[Any, EmbeddedPredictor]] = {}
        self._lock = threading.Lock()
        self.queue.submit(self._load, background=True)

    def _load(self) -> None:
        """Build the model and predictor (on the worker: torch stays on one thread)."""
        from segany.engine.onnx_export import model_sha256
        from segany.loading import load_model

        try:
            self.model = load_model(self.config.model, self.config.checkpoint, progress=False)
            self.predictor = Predictor(self.model, cache_size=0)
            self.batcher = DecodeBatcher(self.predictor, self._embedding)
            self.weights_key = self.model.weights_sha256 or model_sha256(self.model)
            self.cache = EmbeddingCache(
                self.config.embeddings_dir, self.weights_key, self.model.name
            )
            if self._prepare is not None:
                self._prepare(self)
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.ready.set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self.ready.wait(timeout) and self.error is None

    def use(self, model: Sam, weights_key: str, version: str | None, source: Path | None) -> None:
        """On the worker: serve ``model`` (weights ``weights_key``, from the file ``source``;
        None: the registry's) from the next job on. Embeddings are cached by weights, so
        the new version computes its own; the browser's decoder is exported per weights."""
        self.model = model
        self.predictor = Predictor(model, cache_size=0)
        self.batcher.predictor = self.predictor  # requests already queued keep their place
        self.cache = EmbeddingCache(self.config.embeddings_dir, weights_key, model.name)
        self.weights_key, self.version, self.source = weights_key, version, source
        self._memory.clear()
        self._generators = {}
        self._ahead = set()

    def describe(self) -> dict[str, Any]:
        """What a browser decoder needs to know about the model."""
        model = self.model
        return {
            "name": model.name,
            "weights_sha256": self.weights_key,
            "version": self.version,
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

    def _embedding(self, image_sha: str, path: Path, store: bool = True) -> Embedding:
        """On the worker: the embedding from memory, disk, or the encoder (then stored on
        disk unless ``store`` is False)."""
        found = self._memory.get(image_sha) or self.cache.get(image_sha)
        if found is None:
            array = load_image(path)
            found = self.predictor.encode(array, key=image_sha)
            if store:
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

        def job() -> tuple[Any, Sam, str]:  # the weights that decoded, read on the worker
            return self.batcher.run(request), self.model, self.weights_key

        try:
            (logits, scores), model, key = await self.queue.run(job)
        finally:
            self.batcher.discard(request)
        # thresholds, stability and RLE off the model's thread: it goes on to the next job
        return await run_in_threadpool(self._answer, logits, scores, model, key)

    def _answer(
        self, logits: np.ndarray, scores: np.ndarray, model: Sam, weights_key: str
    ) -> dict[str, Any]:
        from segany.everything.masks import stability_score

        threshold = float(model.mask_threshold)
        tensor = torch.from_numpy(logits)
        stability = stability_score(tensor, threshold, STABILITY_OFFSET).nan_to_num(0.0)
        masks = logits > threshold
        return {
            "masks": [mask_to_rle(m) for m in masks],
            "scores": [float(s) for s in scores],
            "stability_scores": [float(s) for s in stability],
            "best": int(np.argmax(scores)),
            "model": model.name,
            "weights_sha256": weights_key,
        }

    # -------------------------------------------------------------- SegEvery
    def segment_everything(
        self, image_sha: str, path: Path, options: Mapping[str, Any], keep_embedding: bool = True
    ) -> Segmented:
        """On the worker: SegEvery's records (COCO RLE) for one image, by a
        :class:`~segany.everything.MaskGenerator` of ``options``, on the image's embedding
        from the cache, with the model that made them. One not cached is computed, and kept
        on disk if ``keep_embedding`` (an annotator looks at a proposed image next; a job's
        images may never be seen)."""
        from segany.everything import MaskGenerator

        key = json.dumps(dict(options), sort_keys=True)
        if key not in self._generators:
            predictor = EmbeddedPredictor(self.model)
            generator = MaskGenerator(predictor, output_mode="coco_rle", **options)
            self._generators = {key: (generator, predictor)}  # settings rarely change
        generator, predictor = self._generators[key]
        array = load_image(path)
        predictor.embedding = self._embedding(image_sha, path, keep_embedding)
        try:
            records: list[dict[str, Any]] = generator.generate(array)
        finally:
            predictor.embedding = None
        return Segmented(records, self.model.name, self.weights_key)

    # ------------------------------------------------------ browser's decoder
    async def decoder_onnx(self) -> Path:
        """The served model's decoder as ONNX, exported once into the data dir (again when
        this segany writes a newer arrangement of the graph than the one there)."""
        from segany.engine.onnx_export import GRAPH_VERSION, export_onnx

        model, key = self.model, self.weights_key  # a switch meanwhile exports these still
        folder = self.config.models_dir / key[:16]
        path = folder / "decoder.onnx"
        meta = folder / "metadata.json"
        current = (
            meta.exists() and json.loads(meta.read_text()).get("graph_version") == GRAPH_VERSION
        )
        if not current:
            await self.queue.run(lambda: export_onnx(model, folder, overwrite=True))
        return path

    def close(self) -> None:
        self.queue.close()


@dataclass(frozen=True)
class Segmented:
    """SegEvery's records of an image, and the model (name, weights sha256) that made them:
    read on the worker, so they name the weights that computed the masks."""

    records: list[dict[str, Any]]
    model_name: str
    weights_sha256: str


class EmbeddedPredictor(Predictor):
    """A predictor whose "encoder" hands out the embedding it is given: SegEvery on an
    image the server has already encoded costs no encoder run."""

    embedding: Embedding | None = None

    def __init__(self, model: Any) -> None:
        super().__init__(model, cache_size=0)

    def encode(self, image: np.ndarray, key: str | None = None) -> Embedding:
        found = self.embedding
        if found is None or found.original_size != tuple(image.shape[:2]):
            return super().encode(image, key)  # a crop, or no embedding given
        return replace(found, key=key if key is not None else image_key(image))
