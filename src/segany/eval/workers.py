"""Work on many generated scenes spread over worker processes, one predictor in each.

``segany eval --jobs N`` and ``segany train ranker --jobs N`` use it. Each worker builds
its predictor once (from a picklable ``build``) and takes whole scenes, which it generates
itself from their seeds; the results come back in scene order, so they are those of a
loop in one process whenever the work on a scene depends on that scene alone. On a small
CPU this beats one process with as many threads: the work on one scene (small images,
many short calls) keeps one thread busy better than two.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any, Protocol, TypeVar

import torch
from tqdm.auto import tqdm

from ..data.scenes import Scene

__all__ = ["Scenes", "map_scenes"]

T = TypeVar("T")


class Scenes(Protocol):
    """Scenes by index (a :class:`~segany.data.scenes.SceneDataset`, a list)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Scene: ...


_PREDICTOR: Any = None  # one per worker process, built by _start


def _start(build: Callable[[], Any], threads: int) -> None:
    global _PREDICTOR
    torch.set_num_threads(threads)
    _PREDICTOR = build()


def _run(work: Callable[[Any, int, Scene], T], scenes: Scenes, index: int) -> T:
    assert _PREDICTOR is not None, "the worker was started without a predictor"
    return work(_PREDICTOR, index, scenes[index])


def map_scenes(
    build: Callable[[], Any],
    work: Callable[[Any, int, Scene], T],
    scenes: Scenes,
    jobs: int = 1,
    progress: bool = True,
) -> list[T]:
    """``[work(predictor, i, scenes[i]) for i in range(len(scenes))]``, the predictor made
    by ``build``: in this process for ``jobs`` 1, else in each of ``jobs`` workers.

    Arguments:
      build, work: must pickle for ``jobs`` > 1 (module-level functions, or
        ``functools.partial`` of them with picklable arguments), as must ``scenes`` (a
        lazy :class:`~segany.data.scenes.SceneDataset`, best).
      jobs: worker processes; each gets this process's torch threads / ``jobs`` (at least 1).
      progress: a progress bar over the scenes.

    Returns:
      The results in scene order. A scene whose work fails raises its error here (the
      scenes not yet started are cancelled).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    with tqdm(total=len(scenes), unit="scene", disable=not progress) as bar:
        if jobs == 1:
            predictor, results = build(), []
            for index in range(len(scenes)):
                results.append(work(predictor, index, scenes[index]))
                bar.update()
            return results
        return _in_workers(build, work, scenes, jobs, bar)


def _in_workers(
    build: Callable[[], Any],
    work: Callable[[Any, int, Scene], T],
    scenes: Scenes,
    jobs: int,
    bar: Any,
) -> list[T]:
    """:func:`map_scenes` with ``jobs`` > 1, ``bar`` updated as each scene is done."""
    threads = max(1, torch.get_num_threads() // jobs)
    context = multiprocessing.get_context("spawn")  # (fork would copy torch's thread pools)
    done: dict[int, T] = {}
    with ProcessPoolExecutor(jobs, context, initializer=_start, initargs=(build, threads)) as pool:
        futures: dict[Future[T], int] = {
            pool.submit(_run, work, scenes, i): i for i in range(len(scenes))
        }
        try:
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                bar.update()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return [done[index] for index in range(len(scenes))]
