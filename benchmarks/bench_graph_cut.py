"""Graph-cut snapping of a batch on one thread and on several, side by side.

Every object's tight box on held-out scenes, answered by the bundled model with its 3
masks, then the masks snapped by the graph cut (:meth:`GraphCut.snap_all`) one by one and
on ``--threads`` threads, rounds interleaved; prints the medians, their ratio, and whether
the masks are identical.

    .venv/bin/python benchmarks/bench_graph_cut.py --scenes 6 --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import segany
from segany.data.scenes import EVAL_BASE_SEED, SceneDataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = segany.load_model("segany_shapes")
    graph_cut = segany.Predictor(model).graph_cut
    assert graph_cut is not None
    plain = segany.Predictor(model, graph_cut=None, zoom=None)
    scenes = SceneDataset(args.scenes, EVAL_BASE_SEED)
    batches = []
    for i in range(args.scenes):
        scene = scenes[i]
        plain.set_image(scene.image)
        masks = plain.predict(box=scene.boxes, multimask=True).masks
        batches.append((scene.image, masks, scene.boxes))
    times: dict[int, list[float]] = {1: [], args.threads: []}
    same = True
    for _ in range(args.rounds):
        outputs = {}
        for threads in times:
            start = time.perf_counter()
            outputs[threads] = [
                graph_cut.snap_all(image, masks.copy(), boxes=boxes, threads=threads)
                for image, masks, boxes in batches
            ]
            times[threads].append(time.perf_counter() - start)
        same &= all(
            np.array_equal(a, b) for a, b in zip(outputs[1], outputs[args.threads], strict=True)
        )
    cuts = sum(m.shape[0] * m.shape[1] for _, m, _ in batches)
    one, many = (float(np.median(times[t])) for t in times)
    print(f"{cuts} cuts ({args.scenes} scenes' boxes x 3 masks), median of {args.rounds}:")
    print("| threads | s | ms per cut |\n|---|---|---|")
    print(f"| 1 | {one:.2f} | {1000 * one / cuts:.1f} |")
    print(f"| {args.threads} | {many:.2f} | {1000 * many / cuts:.1f} |")
    print(f"ratio {one / many:.2f}x; identical masks: {same}")


if __name__ == "__main__":
    main()
