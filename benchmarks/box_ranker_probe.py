"""Probe: answer a box with 3 masks and a ranker trained on boxes.

A box is answered, as SAM does, with the decoder's single-mask output. Asked for three
masks instead, each snapped by the graph cut, the best of the three is often better
than the single one. Can a ranker (segany.models.ranker, the click ranker's features
and size) trained on box prompts pick it?

    collect N0 N1 OUT.npz       ranking examples of training scenes [N0, N1) of base
                                seed 31: every object's tight box and a noisy box, the
                                3 snapped masks' features (with the box's) and IoUs
    fit OUT.safetensors A.npz ... [--click-features]
                                a box ranker (30 features), or with --click-features one
                                on the click ranker's 18 features alone
    eval N0 N1 RANKER OUT.json  held-out scenes: single mask, and the 3 masks picked by
                                the decoder's score and by RANKER (a box ranker, or the
                                mask ranker of --click-features); oracle
    summary A.json ...          a markdown table by prompt and object size

docs/training.md, "Boxes answered with three masks" and "The box ranker", has the
results.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch

import segany
from segany.data.masks import binary_iou
from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
from segany.eval.promptable import SIZE_BINS, prompt_boxes
from segany.loading import load_part
from segany.models.graph_cut import GraphCut
from segany.models.ranker import NUM_FEATURES, MaskRanker, ranking_features
from segany.train.ranker import RankerTrainConfig, fit_ranker
from segany.weights import save_state_dict_file

SEED = 31
METHODS = ("single", "decoder", "ranker", "oracle")


def _setup() -> tuple[segany.Predictor, segany.Predictor]:
    """(the default pipeline, the same without graph cut and ranker), one thread."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    model = segany.load_model("segany_shapes")
    raw = segany.Predictor(model, cache_size=0, graph_cut=None, ranker=None)
    return segany.Predictor(model, cache_size=0), raw


def collect(n0: int, n1: int, out: str) -> None:
    _, raw = _setup()
    cut, scenes = GraphCut(), SceneDataset(n1, SEED)
    features, targets = [], []
    for i in range(n0, n1):
        scene = scenes[i]
        raw.set_image(scene.image)
        tight, noisy = prompt_boxes(scene, np.random.default_rng(SEED * 100_000 + i))
        for boxes in (tight, noisy):
            three = raw.predict(box=boxes, multimask=True)
            for j, truth in enumerate(scene.masks):
                snapped = np.stack([cut(scene.image, m, box=boxes[j]) for m in three.masks[j]])
                features.append(
                    ranking_features(three.scores[j], three.masks[j], snapped, boxes[j])
                )
                targets.append([binary_iou(m, truth) for m in snapped])
        print(i, len(features), flush=True)
    np.savez(out, f=np.stack(features), t=np.asarray(targets, np.float32))


def fit(out: str, shards: list[str], click_features: bool) -> None:
    data = [np.load(s) for s in shards]
    f, t = (np.concatenate([d[k] for d in data]) for k in ("f", "t"))
    f = f[:, :NUM_FEATURES] if click_features else f
    logged: list[dict[str, float]] = []
    config = RankerTrainConfig(seed=SEED, prompts="boxes")  # 18 features: a mask ranker
    ranker = fit_ranker(f, t, config, log=logged.append)
    print(len(f), "examples; picked", logged[-1]["picked_iou"], "slot 0", t[:, 0].mean(),
          "oracle", t.max(1).mean())  # fmt: skip
    save_state_dict_file(ranker.export(), out)


def evaluate(n0: int, n1: int, ranker_path: str, out: str) -> None:
    full, raw = _setup()
    cut, scenes, rows = GraphCut(), SceneDataset(200, EVAL_BASE_SEED), []
    # the mask ranker of the 18 features (fit --click-features; the bundled click ranker
    # before 2026-12-05), or a box ranker
    ranker = load_part(ranker_path, MaskRanker.from_state_dict, "ranker")
    for i in range(n0, n1):
        scene = scenes[i]
        full.set_image(scene.image)
        raw.set_image(scene.image)
        tight, noisy = prompt_boxes(scene, np.random.default_rng(1000 + i))
        for kind, boxes in ("box", tight), ("noisy_box", noisy):
            single = full.predict(box=boxes, multimask=False)
            three = raw.predict(box=boxes, multimask=True)
            for j, truth in enumerate(scene.masks):
                masks, scores = three.masks[j], three.scores[j]
                snapped = np.stack([cut(scene.image, m, box=boxes[j]) for m in masks])
                ious = [binary_iou(m, truth) for m in snapped]
                picks = {
                    "decoder": scores,
                    "ranker": ranker.rank(scores, masks, snapped, boxes[j]),
                }
                row = {"kind": kind, "area": float(truth.sum())}
                row["single"] = binary_iou(single.masks[j, 0], truth)
                row |= {name: ious[int(np.argmax(p))] for name, p in picks.items()}
                rows.append(row | {"oracle": max(ious)})
    Path(out).write_text(json.dumps(rows))


def summary(files: list[str]) -> None:
    rows = [r for name in files for r in json.loads(Path(name).read_text())]
    print("| prompt | objects | size | " + " | ".join(METHODS) + " |")
    print("|---" * (3 + len(METHODS)) + "|")
    for kind in ("box", "noisy_box"):
        for size, low, high in (("all", 0, float("inf")), *SIZE_BINS):
            chosen = [r for r in rows if r["kind"] == kind and low <= r["area"] < high]
            means = " | ".join(f"{np.mean([r[m] for r in chosen]):.3f}" for m in METHODS)
            print(f"| {kind} | {len(chosen)} | {size} | {means} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("collect", "fit", "eval", "summary"))
    parser.add_argument("args", nargs="+")
    parser.add_argument("--click-features", action="store_true", help="fit: 18 features")
    a = parser.parse_args()
    if a.command == "collect":
        collect(int(a.args[0]), int(a.args[1]), a.args[2])
    elif a.command == "fit":
        fit(a.args[0], a.args[1:], a.click_features)
    elif a.command == "eval":
        evaluate(int(a.args[0]), int(a.args[1]), a.args[2], a.args[3])
    else:
        summary(a.args)


if __name__ == "__main__":
    main()
