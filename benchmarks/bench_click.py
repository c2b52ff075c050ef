"""What a click costs from a cached embedding: the official predictor, segany's Predictor
and ClickSession (their defaults), and the bundled model's opt-in mask stages.

One 1024x768 generated scene, exact mode. Each object's centre is clicked in turn (the
same clicks for every predictor, interleaved so that all see the same machine load); the
first click after ``set_image`` is left out, and the medians of the rest are printed in
ms. A ClickSession adds each click to one session (later clicks carry the previous
logits as mask input, as a user's corrections do). Models: the bundled ``segany_shapes``
(its weights, with and without its registered stages) and ``mobile_sam`` (random
weights, the official MobileSAM code beside it).

    .venv/bin/python benchmarks/bench_click.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import segany
from segany import refine
from segany.data.masks import interior_point
from segany.data.scenes import SceneConfig, generate_scene
from segany.reference import official_sam

SIZE = (768, 1024)  # (H, W)


def official_predictor(model: segany.models.Sam) -> Any:
    """The official SamPredictor (segment_anything or mobile_sam) on ``model``'s weights."""
    official = official_sam(model.config)
    official.load_state_dict(model.state_dict())
    if model.name == "mobile_sam":
        from mobile_sam import SamPredictor  # type: ignore[import-untyped]
    else:
        from segment_anything import SamPredictor  # type: ignore[import-untyped]
    return SamPredictor(official.eval())


def clickers(model: segany.models.Sam, image: np.ndarray) -> dict[str, Callable[..., Any]]:
    """name -> a function answering one click (x, y), each with ``image`` already set."""
    official = official_predictor(model)
    official.set_image(image)
    plain = segany.Predictor(model)
    plain.set_image(image)
    session = segany.ClickSession(plain)
    out: dict[str, Callable[..., Any]] = {
        "official SamPredictor": lambda x, y: official.predict(
            point_coords=np.array([[x, y]]), point_labels=np.array([1])
        ),
        "Predictor": lambda x, y: plain.predict(points=[[x, y]], labels=[1]),
        "ClickSession": lambda x, y: session.click(x, y, positive=not session.points),
    }
    if refine.get_stage_spec(model) is not None:
        stages = refine.registered_stages(model)
        for name, chosen in (("+ stages", stages), ("+ stages but zoom", stages.without("zoom"))):
            staged = refine.StagedPredictor(segany.Predictor(model), chosen)
            staged.set_image(image)
            out[f"Predictor {name}"] = lambda x, y, p=staged: p.predict(points=[[x, y]], labels=[1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7, help="scene seed")
    parser.add_argument("--clicks", type=int, default=12, help="clicks per predictor")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = SceneConfig(size=SIZE, min_objects=args.clicks, max_objects=args.clicks + 4)
    scene = generate_scene(args.seed, config)
    clicks = [interior_point(mask) for mask in scene.masks][: args.clicks]
    torch.manual_seed(0)
    models = {
        "segany_shapes": segany.load_model("segany_shapes"),
        "mobile_sam (random weights)": segany.load_model("mobile_sam", pretrained=False),
    }
    report: dict[str, Any] = {"threads": args.threads, "image": list(SIZE), "clicks": {}}
    for label, model in models.items():
        answer = clickers(model, scene.image)
        times: dict[str, list[float]] = {name: [] for name in answer}
        for x, y in clicks:
            for name, click in answer.items():
                start = time.perf_counter()
                click(x, y)
                times[name].append(time.perf_counter() - start)
        report["clicks"][label] = {
            name: {
                "first_ms": round(1000 * spent[0], 1),
                "median_ms_after_first": round(1000 * float(np.median(spent[1:])), 1),
            }
            for name, spent in times.items()
        }
        report["clicks"][label]["count"] = len(clicks)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
