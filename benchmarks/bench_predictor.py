"""Side-by-side timings: segany Predictor vs the official SamPredictor.

Both run the same random weights (segany's initialisation, loaded into the official model;
speed does not depend on weight values) interleaved in one process, so machine noise hits
both alike; we report medians and the ratio official / segany (> 1 means segany is faster).

    .venv/bin/python benchmarks/bench_predictor.py [--models mobile_sam sam_vit_b] [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import torch

import segany
from segany.reference import official_sam


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def bench_model(
    name: str, repeats: int, image_hw: tuple[int, int]
) -> list[tuple[str, float, float]]:
    torch.manual_seed(0)
    ours_model = segany.load_model(name, pretrained=False)
    official_model = official_sam(ours_model.config)
    official_model.load_state_dict(ours_model.state_dict())
    official_model.eval()  # after loading: MobileSAM caches its attention biases on eval()
    if name == "mobile_sam":
        from mobile_sam import SamPredictor  # type: ignore[import-untyped]
    else:
        from segment_anything import SamPredictor  # type: ignore[import-untyped]
    official = SamPredictor(official_model)
    ours = segany.Predictor(ours_model, cache_size=0)  # like for like: no embedding cache

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*image_hw, 3), dtype=np.uint8)
    height, width = image_hw
    point = np.array([[width / 2, height / 2]])
    box = np.array([width * 0.2, height * 0.2, width * 0.7, height * 0.8])
    boxes = np.stack([box + i for i in range(16)])

    rows = []
    cases: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        ("set_image", lambda: official.set_image(image), lambda: ours.set_image(image)),
        (
            "predict: 1 point, 3 masks",
            lambda: official.predict(point, np.array([1])),
            lambda: ours.predict(points=point, labels=[1]),
        ),
        (
            "predict: 1 box, 1 mask",
            lambda: official.predict(box=box, multimask_output=False),
            lambda: ours.predict(box=box, multimask=False),
        ),
        (
            "predict: 16 boxes, 1 mask each",
            lambda: [official.predict(box=b, multimask_output=False) for b in boxes],
            lambda: ours.predict(box=boxes, multimask=False),
        ),
    ]
    with torch.inference_mode():
        for label, run_official, run_ours in cases:
            run_official()  # warm-up, and both predictors hold the image afterwards
            run_ours()
            off_times, our_times = [], []
            for _ in range(repeats):  # interleave so noise hits both alike
                off_times.append(_median_ms(run_official, 1))
                our_times.append(_median_ms(run_ours, 1))
            off, ours_ms = statistics.median(off_times), statistics.median(our_times)
            rows.append((f"{name} {label}", off, ours_ms))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mobile_sam", "sam_vit_b"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image", default="768x1024", help="HxW of the test image")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    height, width = (int(v) for v in args.image.split("x"))

    print(f"# {date.today()} | {_cpu_name()} | {args.threads} threads | torch {torch.__version__}")
    print(f"# image {height}x{width}, medians of {args.repeats} interleaved runs\n")
    print("| case | official ms | segany ms | speed-up |")
    print("|---|---|---|---|")
    for name in args.models:
        for label, off, ours in bench_model(name, args.repeats, (height, width)):
            print(f"| {label} | {off:,.1f} | {ours:,.1f} | {off / ours:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
