"""Probe: would the click ranker gain from where the clicks sit in each snapped mask?

    collect N0 N1 OUT.npz   click examples of training scenes [N0, N1) of base seed 41:
                            per object a random click, the centre click and 2 corrective
                            clicks (as segany.train.ranker.object_examples), each with the
                            18 ranking features, 12 click features and the 3 snapped IoUs
    cv A.npz                fit on the first 60 % of the rows, score the pick on the rest,
                            with 18 and with 30 features

Click features per snapped mask (segany.models.ranker.click_features, which the click
ranker reads since 2026-12-05): the first click's distance-transform depth over the
mask's deepest point; the share of positive and of negative clicks inside; the click's
distance to the mask's centroid over sqrt(area). docs/training.md, "The box ranker"
and "Click features", has the results.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

import segany
from segany.data.masks import binary_iou, corrective_click, interior_point
from segany.data.scenes import SceneDataset
from segany.models.graph_cut import GraphCut
from segany.models.ranker import click_features, ranking_features
from segany.train.ranker import RankerTrainConfig, fit_ranker

SEED = 41


def collect(n0: int, n1: int, out: str) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    model = segany.load_model("segany_shapes")
    predictor = segany.Predictor(model, cache_size=0, graph_cut=None, ranker=None)
    cut, scenes = GraphCut(), SceneDataset(n1, SEED)
    rows: dict[str, list] = {"f": [], "c": [], "t": [], "k": []}

    def answer(image, points, labels, previous, truth, k):  # type: ignore[no-untyped-def]
        coords = np.array(points, float)
        mask_input = None if previous is None else previous[None]
        o = predictor.predict(points=coords, labels=labels, mask_input=mask_input)
        snapped = np.stack([cut(image, m, coords, np.array(labels)) for m in o.masks])
        ious = [binary_iou(m, truth) for m in snapped]
        rows["f"].append(ranking_features(o.scores, o.masks, snapped))
        rows["c"].append(click_features(coords, np.array(labels), snapped))
        rows["t"].append(ious)
        rows["k"].append(k)
        return o.low_res_logits, snapped, ious

    for i in range(n0, n1):
        scene = scenes[i]
        predictor.set_image(scene.image)
        rng = np.random.default_rng(i)
        for truth in scene.masks:
            ys, xs = np.nonzero(truth)
            pick = rng.integers(len(ys))
            answer(scene.image, [(xs[pick] + 0.5, ys[pick] + 0.5)], [1], None, truth, 0)
            points, labels, previous = [interior_point(truth)], [1], None
            for k in range(3):
                logits, snapped, ious = answer(scene.image, points, labels, previous, truth, k + 1)
                chosen = int(np.argmax(ious)) if rng.random() < 0.5 else int(rng.integers(3))
                click = corrective_click(truth, snapped[chosen])
                if click is None:
                    break
                points.append(click[0])
                labels.append(click[1])
                previous = logits[chosen]
        print(i, len(rows["t"]), flush=True)
    np.savez(out, **{k: np.asarray(v) for k, v in rows.items()})


def cv(path: str) -> None:
    data = np.load(path)
    n = int(len(data["t"]) * 0.6)
    t, kind = data["t"][n:].astype(np.float32), data["k"][n:]
    print("prompt: random / centre / 1 correction / 2 corrections")

    def report(name: str, pick: np.ndarray) -> None:
        means = [
            t[kind == k][np.arange((kind == k).sum()), pick[kind == k]].mean() for k in range(4)
        ]
        print(f"{name:16s}" + " / ".join(f"{m:.3f}" for m in means))

    report("oracle", t.argmax(1))
    report("decoder", data["f"][n:, :3].argmax(1))
    for name, x in (("18", data["f"]), ("18 + 12 click", np.hstack([data["f"], data["c"]]))):
        ranker = fit_ranker(x[:n], data["t"][:n].astype(np.float32), RankerTrainConfig(seed=31))
        with torch.no_grad():
            report(name, ranker(torch.from_numpy(x[n:].astype(np.float32))).argmax(1).numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("collect", "cv"))
    parser.add_argument("args", nargs="+")
    a = parser.parse_args()
    if a.command == "collect":
        collect(int(a.args[0]), int(a.args[1]), a.args[2])
    else:
        cv(a.args[0])


if __name__ == "__main__":
    main()
