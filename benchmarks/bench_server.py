"""The annotation server under load, beside the in-process predictors it wraps.

One run on this machine, the server (``segany serve``, the bundled model, the network
alone: no stages) in its own process on loopback, the clients in this one:

1. in-process floor: the official SamPredictor and segany's Predictor answering the same
   clicks on the same 1024x768 scene (median ms);
2. one client: server-side decode of the same clicks, sequentially (p50, p99 ms);
3. an embedding served from the cache (p50, p99 ms);
4. ``--clients`` clients annotating for ``--seconds`` (decode a click, save the best mask
   with an idempotency key, sometimes send it twice): decode and write latencies, 503
   answers counted apart, then every acknowledged write checked against the database
   (lost, duplicated).

    .venv/bin/python benchmarks/bench_server.py --seconds 60 --clients 20
    .venv/bin/python benchmarks/bench_server.py --db postgresql+psycopg://...   # a fresh DB
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
from PIL import Image

import segany
from segany.data.masks import interior_point
from segany.data.scenes import SceneConfig, generate_scene
from segany.reference import official_sam
from segany.server.auth import add_user, issue_token
from segany.server.database import open_database
from segany.server.loadtest import ServerProcess, annotate, check_report, percentile

SIZE = (768, 1024)


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _scene_png(seed: int) -> tuple[bytes, list[tuple[float, float]], np.ndarray]:
    scene = generate_scene(seed, SceneConfig(size=SIZE, min_objects=12, max_objects=14))
    buffer = io.BytesIO()
    Image.fromarray(scene.image).save(buffer, "PNG")
    return buffer.getvalue(), [interior_point(m) for m in scene.masks][:12], scene.image


def in_process(image: np.ndarray, clicks: list[tuple[float, float]]) -> dict[str, float]:
    """Median ms per click of the official predictor and segany's, interleaved."""
    model = segany.load_model()
    official_model = official_sam(model.config)
    official_model.load_state_dict(model.state_dict())
    from segment_anything import SamPredictor  # type: ignore[import-untyped]

    official = SamPredictor(official_model.eval())
    official.set_image(image)
    ours = segany.Predictor(model)
    ours.set_image(image)
    times: dict[str, list[float]] = {"official SamPredictor": [], "segany Predictor": []}
    answer = {
        "official SamPredictor": lambda x, y: official.predict(
            point_coords=np.array([[x, y]]), point_labels=np.array([1])
        ),
        "segany Predictor": lambda x, y: ours.predict([[x, y]], [1]),
    }
    for _ in range(3):
        for x, y in clicks:
            for name, run in answer.items():
                start = time.perf_counter()
                run(x, y)
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: round(statistics.median(v[1:]), 1) for name, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--db", help="database URL (default: SQLite in a temporary data dir)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="segany-bench-server-"))
    db_url = args.db or f"sqlite:///{work / 'segany.db'}"
    db = open_database(db_url)
    with db.session() as session:
        token = issue_token(session, add_user(session, f"bench{int(time.time())}")).token
    db.close()
    pngs = [_scene_png(seed) for seed in (7, 8, 9, 10)]
    results: dict[str, Any] = {"cpu": _cpu(), "date": time.strftime("%Y-%m-%d"),
                               "database": db_url.split(":")[0]}  # fmt: skip
    with ServerProcess(work / "data", db_url, threads=2) as server:
        headers = {"Authorization": f"Bearer {token}"}
        http = httpx.Client(base_url=server.url, headers=headers, timeout=60)
        project = http.post("/api/projects", json={"name": "bench"}).json()["id"]
        images = [http.post(f"/api/projects/{project}/images",
                            files={"file": (f"scene{i}.png", png, "image/png")}).json()
                  for i, (png, _, _) in enumerate(pngs)]  # fmt: skip
        first = images[0]["id"]
        start = time.perf_counter()
        http.get(f"/api/images/{first}/embedding").raise_for_status()
        results["first_embedding_ms"] = round((time.perf_counter() - start) * 1000, 1)
        for image in images:  # all encoded now (the server also encodes ahead)
            http.get(f"/api/images/{image['id']}/embedding").raise_for_status()
        time.sleep(1.0)
        results["in_process_ms"] = in_process(pngs[0][2], pngs[0][1])
        one: list[float] = []
        for _ in range(5):
            for x, y in pngs[0][1]:
                start = time.perf_counter()
                http.post(f"/api/images/{first}/decode",
                          json={"points": [[x, y]], "labels": [1]}).raise_for_status()  # fmt: skip
                one.append((time.perf_counter() - start) * 1000)
        results["one_client_decode_ms"] = {"p50": percentile(one, 50), "p99": percentile(one, 99)}
        cached: list[float] = []
        for _ in range(50):
            start = time.perf_counter()
            http.get(f"/api/images/{first}/embedding").raise_for_status()
            cached.append((time.perf_counter() - start) * 1000)
        results["cached_embedding_ms"] = {"p50": percentile(cached, 50),
                                          "p99": percentile(cached, 99)}  # fmt: skip
        report = annotate(server.url, token, project, images, clients=args.clients,
                          seconds=args.seconds)  # fmt: skip
        held = http.get(f"/api/projects/{project}/annotations").json()
        results["load"] = {**report.summary(), **check_report(report, held)}
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
