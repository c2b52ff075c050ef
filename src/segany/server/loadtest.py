"""Annotating clients for load and crash tests of a running server.

Each client is a thread with its own HTTP connection that, until the time is up, picks an
image, asks the server to decode a click (optional), and saves the best mask as an
annotation under a fresh idempotency key. A write that fails in transit (503, timeout,
connection lost) is retried with the same key, so it is made at most once; some
acknowledged writes are sent again on purpose, to check that a retry never duplicates.
The :class:`LoadReport` says what the server acknowledged, to be checked against what it
holds (:func:`check_report`). :class:`ServerProcess` runs ``segany serve`` as a real
process on loopback, to be loaded and killed.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from segany.data.rle import mask_to_rle

__all__ = ["LoadReport", "ServerProcess", "annotate", "check_report", "free_port", "percentile"]


@dataclass
class LoadReport:
    """What the clients saw. ``acked``: idempotency key -> annotation id, for every write
    the server answered 200/201; ``refused``: 503 answers (by request kind)."""

    clients: int
    seconds: float
    acked: dict[str, int] = field(default_factory=dict)
    decode_ms: list[float] = field(default_factory=list)
    write_ms: list[float] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=lambda: {"decode": 0, "write": 0})
    retried: int = 0
    resent: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def summary(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 1),
            "writes_acked": len(self.acked),
            "decodes": len(self.decode_ms),
            "decode_p50_ms": percentile(self.decode_ms, 50),
            "decode_p99_ms": percentile(self.decode_ms, 99),
            "write_p50_ms": percentile(self.write_ms, 50),
            "write_p99_ms": percentile(self.write_ms, 99),
            "refused_503": dict(self.refused),
            "retried": self.retried,
            "resent_on_purpose": self.resent,
            "failures": len(self.failures),
        }


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def annotate(
    base_url: str,
    token: str,
    project_id: int,
    images: list[dict[str, Any]],
    *,
    clients: int = 20,
    seconds: float = 60.0,
    decode: bool = True,
    seed: int = 0,
    stop: threading.Event | None = None,
) -> LoadReport:
    """Run ``clients`` annotating threads for ``seconds`` (or until ``stop`` is set).

    ``images``: the project's images as the API lists them (id, width, height).
    """
    report = LoadReport(clients=clients, seconds=seconds)
    deadline = time.monotonic() + seconds
    halt = stop or threading.Event()
    threads = [
        threading.Thread(
            target=_client,
            args=(base_url, token, project_id, images, n, deadline, decode, seed, halt, report),
            daemon=True,
        )
        for n in range(clients)
    ]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report.seconds = time.monotonic() - start
    return report


def _client(
    base_url: str,
    token: str,
    project_id: int,
    images: list[dict[str, Any]],
    number: int,
    deadline: float,
    decode: bool,
    seed: int,
    halt: threading.Event,
    report: LoadReport,
) -> None:
    rng = random.Random(seed * 1000 + number)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30.0) as http:
        count = 0
        while time.monotonic() < deadline and not halt.is_set():
            image = rng.choice(images)
            x = rng.uniform(0, image["width"] - 1)
            y = rng.uniform(0, image["height"] - 1)
            rle = _mask(http, image, x, y, decode, report)
            if rle is None:
                continue
            key = f"load-{seed}-{number}-{count}"
            count += 1
            body = {
                "image_id": image["id"],
                "category_id": 1,
                "segmentation": rle,
                "stage": "manual",
                "prompts": {"points": [[x, y]], "labels": [1]},
            }
            if not _write(http, project_id, key, body, report, halt):
                return  # the server is gone
            if rng.random() < 0.1:  # a client retrying after a lost answer
                with report.lock:
                    report.resent += 1
                _write(http, project_id, key, body, report, halt)


def _mask(
    http: httpx.Client, image: dict[str, Any], x: float, y: float, decode: bool, report: LoadReport
) -> dict[str, Any] | None:
    if not decode:  # a square around the click
        mask = np.zeros((image["height"], image["width"]), bool)
        mask[max(0, int(y) - 3) : int(y) + 4, max(0, int(x) - 3) : int(x) + 4] = True
        return mask_to_rle(mask)
    start = time.perf_counter()
    try:
        answer = http.post(
            f"/api/images/{image['id']}/decode", json={"points": [[x, y]], "labels": [1]}
        )
    except httpx.HTTPError:
        time.sleep(0.05)
        return None
    if answer.status_code == 503:
        with report.lock:
            report.refused["decode"] += 1
        time.sleep(0.05)
        return None
    if answer.status_code != 200:
        with report.lock:
            report.failures.append(f"decode {answer.status_code}: {answer.text[:200]}")
        return None
    elapsed = (time.perf_counter() - start) * 1000
    data = answer.json()
    with report.lock:
        report.decode_ms.append(elapsed)
    rle: dict[str, Any] = data["masks"][data["best"]]
    return rle


def _write(
    http: httpx.Client,
    project_id: int,
    key: str,
    body: dict[str, Any],
    report: LoadReport,
    halt: threading.Event,
) -> bool:
    """POST until acknowledged; False when the server stopped answering."""
    for attempt in range(200):
        start = time.perf_counter()
        try:
            answer = http.post(
                f"/api/projects/{project_id}/annotations",
                json=body,
                headers={"Idempotency-Key": key},
            )
        except httpx.HTTPError:
            if halt.is_set() or attempt > 20:
                return False
            with report.lock:
                report.retried += 1
            time.sleep(0.1)
            continue
        if answer.status_code in (200, 201):
            with report.lock:
                known = report.acked.setdefault(key, answer.json()["id"])
                report.write_ms.append((time.perf_counter() - start) * 1000)
                if known != answer.json()["id"]:
                    report.failures.append(f"key {key}: ids {known} and {answer.json()['id']}")
            return True
        with report.lock:
            if answer.status_code == 503:
                report.refused["write"] += 1
            else:
                report.failures.append(f"write {answer.status_code}: {answer.text[:200]}")
                return True
            report.retried += 1
        time.sleep(0.05)
    return False


def check_report(report: LoadReport, held: list[dict[str, Any]]) -> dict[str, int]:
    """Compare what was acknowledged with ``held`` (the server's annotations as the API
    lists them, with their ``idempotency_key``): acknowledged writes missing (``lost``) and
    keys held more than once or under another id (``duplicated``)."""
    by_key: dict[str, list[int]] = {}
    for row in held:
        by_key.setdefault(str(row.get("idempotency_key")), []).append(int(row["id"]))
    lost = sum(1 for key, i in report.acked.items() if i not in by_key.get(key, []))
    duplicated = sum(len(ids) - 1 for key, ids in by_key.items() if key in report.acked)
    return {"acked": len(report.acked), "held": len(held), "lost": lost, "duplicated": duplicated}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """``segany serve`` in a child process on a free port, until ``/readyz`` answers;
    :meth:`stop` is SIGTERM (a clean shutdown), :meth:`kill` is ``kill -9``."""

    def __init__(
        self,
        data: Path,
        db_url: str | None,
        *extra: str,
        threads: int | None = None,
        program: list[str] | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """``db_url`` None: the data dir's SQLite; ``program``: the command before
        ``serve`` (default this Python's ``-m segany.cli.main``), run in ``cwd`` with
        ``env`` (default this process's environment)."""
        self.data, self.db_url, self.extra, self.threads = data, db_url, extra, threads
        self.program = program or [sys.executable, "-m", "segany.cli.main"]
        self.cwd, self.env = cwd, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data / f"server-{self.port}.log"

    def start(self, timeout: float = 90.0) -> ServerProcess:
        self.data.mkdir(parents=True, exist_ok=True)
        command = [*self.program, "serve", "--data", str(self.data), "--port", str(self.port)]
        if self.db_url is not None:
            command += ["--db", self.db_url]
        env = dict(os.environ if self.env is None else self.env)
        if self.threads is not None:  # torch's threads in the server (default: all cores)
            env["OMP_NUM_THREADS"] = str(self.threads)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [*command, *self.extra], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.cwd
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"the server was not ready in {timeout} s: {self.log.read_text()[-2000:]}"
        )

    def kill(self) -> None:
        """``kill -9``: no clean-up of any kind."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
