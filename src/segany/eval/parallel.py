"""The promptable evaluation spread over worker processes (``segany eval --jobs N``).

Each worker builds its own predictor once and takes whole scenes; scenes are generated in
the workers from their seeds, and each scene's random prompts come from its own generator
(:func:`~segany.eval.promptable.scene_rng`), so the rows are those of the serial
:func:`~segany.eval.promptable.evaluate_promptable`, in scene order, whatever ``jobs`` is.
On a small CPU this beats one process with as many threads: the predictor's work on one
scene (small images, many short calls) keeps one thread busy better than two.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from ..data.scenes import Scene
from ..predictor import Predictor
from .promptable import evaluate_promptable

__all__ = ["evaluate_in_processes"]


class Scenes(Protocol):
    """Scenes by index (a :class:`~segany.data.scenes.SceneDataset`, a list)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Scene: ...


_PREDICTOR: Predictor | None = None  # one per worker process, built by _start


def _start(build: Callable[[], Predictor], threads: int) -> None:
    global _PREDICTOR
    torch.set_num_threads(threads)
    _PREDICTOR = build()


def _scene_rows(scenes: Scenes, index: int, options: dict[str, Any]) -> list[dict[str, float]]:
    assert _PREDICTOR is not None, "the worker was started without a predictor"
    return evaluate_promptable(_PREDICTOR, [scenes[index]], **options)


def evaluate_in_processes(
    build: Callable[[], Predictor],
    scenes: Scenes,
    jobs: int,
    progress: bool = True,
    **options: Any,
) -> list[dict[str, float]]:
    """:func:`~segany.eval.promptable.evaluate_promptable` of ``scenes`` in ``jobs`` worker
    processes.

    Arguments:
      build: makes the predictor in each worker; it and ``scenes`` (a lazy
        :class:`~segany.data.scenes.SceneDataset`, best) must pickle, so a module-level
        function or a ``functools.partial`` of one.
      jobs: worker processes; each gets this process's torch threads / ``jobs`` (at least 1).
      options: ``clicks``, ``seed``, ``click_masks``, ``box_masks`` and ``merge`` of
        :func:`~segany.eval.promptable.evaluate_promptable`.

    Returns:
      One row per object, in scene order. A scene that fails raises its error here (after
      the scenes not yet started are cancelled).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    threads = max(1, torch.get_num_threads() // jobs)
    context = multiprocessing.get_context("spawn")  # (fork would copy torch's thread pools)
    done: dict[int, list[dict[str, float]]] = {}
    with ProcessPoolExecutor(jobs, context, initializer=_start, initargs=(build, threads)) as pool:
        futures: dict[Future[list[dict[str, float]]], int] = {
            pool.submit(_scene_rows, scenes, i, options): i for i in range(len(scenes))
        }
        try:
            finished = as_completed(futures)
            for future in tqdm(finished, total=len(futures), unit="scene", disable=not progress):
                done[futures[future]] = future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return [row for index in sorted(done) for row in done[index]]
