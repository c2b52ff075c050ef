"""Suite-wide settings for ``make test``'s ``pytest-xdist`` workers (one per core).

* One torch thread per worker, so that workers never oversubscribe the cores; the
  processes a worker starts (CLI subprocesses, servers) inherit it. A plain ``pytest``
  run without workers uses every core.
* Files with the most ``slow`` tests are collected first. Each file goes to one worker
  (``--dist loadfile --no-loadscope-reorder``), so the long ones start at once and the
  short ones fill in around them; the suite then ends when both workers do.
"""

from __future__ import annotations

import os

import pytest
import torch


def _worker_count() -> int:
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


def pytest_configure(config: pytest.Config) -> None:
    workers = _worker_count()
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow: dict[object, int] = {}
    for item in items:
        slow[item.path] = slow.get(item.path, 0) + bool(item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])  # stable: each file's tests stay together
