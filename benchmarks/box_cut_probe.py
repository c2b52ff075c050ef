"""A box's own cut beside the pipeline's box answer, on the held-out scenes.

``GraphCut.cut_box`` is GrabCut seeded by the box alone, inside the box (no margin); the
pipeline's answer is the default ``Predictor``'s (3 masks per box, the registered box
ranker's pick), or with ``--box-ranker PATH`` another box ranker's. For every object, its
tight box and its noisy box, drawn as ``segany eval`` draws them (the scene's rng
``default_rng(1000 + i)``), so the figures match the evaluation's box columns. Prints a
markdown table by size: the cut alone, the pipeline's pick, and the best of the pipeline's
three masks (its oracle).

    .venv/bin/python benchmarks/box_cut_probe.py --scenes 200 --json box_cut.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

import segany
from segany.data.masks import binary_iou
from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
from segany.eval.promptable import SIZE_BINS, prompt_boxes
from segany.models.graph_cut import GraphCut

COLUMNS = ("cut", "pick", "oracle")


def scene_rows(predictor: segany.Predictor, cut: GraphCut, scene, index: int) -> list[dict]:
    """One row per object: its area and, per box kind, the cut's, the pick's and the
    oracle's IoU (keys ``tight_cut``, ``noisy_pick``, ...)."""
    predictor.set_image(scene.image)
    rows: list[dict] = [{"area": float(m.sum())} for m in scene.masks]
    for kind, boxes in zip(
        ("tight", "noisy"), prompt_boxes(scene, np.random.default_rng(1000 + index)), strict=True
    ):
        answer = predictor.predict(box=boxes, multimask=True)
        for row, truth, box, masks, scores in zip(
            rows, scene.masks, boxes, answer.masks, answer.scores, strict=True
        ):
            truth = truth.astype(bool)
            row[f"{kind}_cut"] = binary_iou(cut.cut_box(scene.image, box)[1], truth)
            row[f"{kind}_pick"] = binary_iou(masks[int(np.argmax(scores))], truth)
            row[f"{kind}_oracle"] = max(binary_iou(m, truth) for m in masks)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument(
        "--box-ranker", type=Path, help="a box ranker file (else the registered one)"
    )
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    model = segany.load_model("segany_shapes")
    extra = {"box_ranker": segany.load_box_ranker(path=args.box_ranker)} if args.box_ranker else {}
    predictor = segany.Predictor(model, cache_size=0, **extra)
    scenes = SceneDataset(args.scenes, EVAL_BASE_SEED)
    rows = [
        row
        for i in tqdm(range(args.scenes), unit="scene")
        for row in scene_rows(predictor, GraphCut(), scenes[i], i)
    ]
    if args.json:
        args.json.write_text(json.dumps(rows))
    names = [f"{kind} {c}" for kind in ("tight", "noisy") for c in COLUMNS]
    print("| size | objects | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 2) + "|")
    for name, low, high in (("all", 0, float("inf")), *SIZE_BINS):
        chosen = [r for r in rows if low <= r["area"] < high]
        means = [
            np.mean([r[f"{kind}_{c}"] for r in chosen])
            for kind in ("tight", "noisy")
            for c in COLUMNS
        ]
        print(f"| {name} | {len(chosen)} | " + " | ".join(f"{m:.3f}" for m in means) + " |")


if __name__ == "__main__":
    main()
