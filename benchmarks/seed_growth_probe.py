"""How much does the graph cut move its seed? And does growing the model's mask help?

``ceiling``: GrabCut (``segany.models.graph_cut.GraphCut``) seeded with each instance's
ground truth inside its tight box, as it is, dilated and eroded by 2 px: how far the cut
pulls a seed that is too small or too large back to the object's edge.

``eval``: the default ``Predictor`` pipeline of the bundled model with the graph cut's
seed grown by ``--grow-box`` px for box prompts (``GraphCut(box_grow=)``) and by
``--grow-click`` px for click prompts (negative: eroded), scored by ``segany eval``'s
``evaluate_scene`` with each scene's own random stream, as docs/training.md's tables.

    .venv/bin/python benchmarks/seed_growth_probe.py ceiling --scenes 20
    .venv/bin/python benchmarks/seed_growth_probe.py eval --first 0 --scenes 100 \\
        --grow-box 1 --grow-click -1 --json rows_a.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

import segany
from segany.data.masks import binary_iou
from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
from segany.eval.promptable import evaluate_scene, summarize
from segany.models.graph_cut import GraphCut, grow_mask


@dataclass(frozen=True)
class ClickGrowth(GraphCut):
    """``GraphCut`` whose click prompts' seeds are grown by ``grow_click`` pixels too."""

    grow_click: int = 0

    def __call__(self, image, mask, points=None, labels=None, box=None):  # type: ignore[no-untyped-def]
        seed = mask if box is not None else grow_mask(mask, self.grow_click)
        return super().__call__(image, seed, points, labels, box)


def ceiling(scenes: SceneDataset, first: int, count: int) -> None:
    cut = GraphCut(box_grow=0)
    found: dict[str, list[float]] = {"as it is": [], "dilated 2 px": [], "eroded 2 px": []}
    for i in tqdm(range(first, first + count), desc="scenes"):
        scene = scenes[i]
        for truth, box in zip(scene.masks, scene.boxes.astype(np.float64), strict=True):
            for name, pixels in zip(found, (0, 2, -2), strict=True):
                snapped = cut(scene.image, grow_mask(truth, pixels), box=box)
                found[name].append(binary_iou(snapped, truth))
    for name, values in found.items():
        print(f"ground truth {name}: mIoU {np.mean(values):.3f} ({len(values)} objects)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("ceiling", "eval"))
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--grow-box", type=int, default=1)
    parser.add_argument("--grow-click", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the per-object rows")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    scenes = SceneDataset(200, EVAL_BASE_SEED)
    if args.mode == "ceiling":
        ceiling(scenes, args.first, args.scenes)
        return
    cut = ClickGrowth(box_grow=max(args.grow_box, 0), grow_click=args.grow_click)
    predictor = segany.Predictor(segany.load_model("segany_shapes"), cache_size=0, graph_cut=cut)
    rows = []
    for i in tqdm(range(args.first, args.first + args.scenes), desc="scenes"):
        rows += evaluate_scene(predictor, scenes[i], 3, np.random.default_rng(1000 + i))
    if args.json:
        args.json.write_text(json.dumps(rows))
    for size, figures in summarize(rows).items():
        print(size, " ".join(f"{k} {v:.3f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
