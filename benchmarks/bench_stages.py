"""What the bundled model's opt-in mask stages (segany.refine) cost per prompt: the
network alone, + refiner, + graph cut, + rankers, + zoomed crops for clicks.

Medians over held-out scenes (a click on an object: 3 masks; its tight box: 1 mask, or 3
masks when a box ranker picks among them, as in the default pipeline), the four
predictors interleaved so that all see the same machine load; the embedding is
cached, so the times are the prompt's alone (decoder, refiner, upscaling, graph cut),
except with zoom: a click's crops are encoded when first met (kept for nearby clicks), as
a user's first click on an object meets them.

    .venv/bin/python benchmarks/bench_stages.py --scenes 10 --threads 2
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch

import segany
from segany import refine
from segany.data.masks import interior_point
from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
from segany.eval.promptable import box_masks_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mode", choices=("exact", "fast"), default="exact")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = segany.load_model("segany_shapes", mode=args.mode)
    stages = refine.registered_stages(model)
    chosen = {
        "with refiner": stages.without("graph_cut", "ranker", "box_ranker", "zoom"),
        "refiner + graph cut": stages.without("ranker", "box_ranker", "zoom"),
        "+ rankers": stages.without("zoom"),
        "+ zoom (all stages)": stages,
    }
    predictors: dict[str, Any] = {"decoder only": segany.Predictor(model)}
    for name, some in chosen.items():
        predictors[name] = refine.StagedPredictor(segany.Predictor(model), some)
    times: dict[str, dict[str, list[float]]] = {n: {"click": [], "box": []} for n in predictors}
    scenes = SceneDataset(args.scenes, EVAL_BASE_SEED)
    for i in range(args.scenes):
        scene = scenes[i]
        for predictor in predictors.values():
            predictor.set_image(scene.image)
        for mask, box in zip(scene.masks, scene.boxes, strict=True):
            point = [list(interior_point(mask))]
            for name, predictor in predictors.items():
                start = time.perf_counter()
                predictor.predict(points=point, labels=[1])
                middle = time.perf_counter()
                predictor.predict(box=box, multimask=box_masks_of(predictor) == 3)
                times[name]["click"].append(middle - start)
                times[name]["box"].append(time.perf_counter() - middle)
    result = {
        name: {kind: round(1000 * float(np.median(v)), 2) for kind, v in kinds.items()}
        for name, kinds in times.items()
    }
    for name in list(predictors)[1:]:
        result[f"ratio, {name}"] = {
            kind: round(result[name][kind] / result["decoder only"][kind], 2)
            for kind in ("click", "box")
        }
    print(json.dumps({"ms_median": result, "prompts": len(times["with refiner"]["box"]),
                      "threads": args.threads, "mode": args.mode}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
