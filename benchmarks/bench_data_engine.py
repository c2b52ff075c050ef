"""One full data-engine round on a shifted scene domain, through `segany serve`'s API.

    .venv/bin/python benchmarks/bench_data_engine.py [--manual 24] [--semi 6] [--auto 6]
        [--held-out 12] [--config retrain.json] [--accept-iou 0.9] [--out FILE]

A server (SQLite, the bundled model) gets a project of generated scenes of the *shifted*
domain (`SceneConfig(domain="shifted")`: textures, palettes and shapes the bundled model
was not trained on; training seeds). A simulated annotator (segany.eval.annotator, SAM's
protocol: accept at IoU ≥ --accept-iou with the ground truth, give up after 5 clicks;
what it keeps is the model's mask) then goes through SA-1B's stages
(segany.server.engine_round):

1. manual annotation of the first --manual images;
2. retraining from the project (segany.server.retrain, the recipe overridden by
   --config), the new version activated on the server;
3. proposals on the next --semi images, reviewed, the missing objects added by hand;
4. an automatic job over the project (the last --auto images were touched by nothing else).

Before and after the retraining, on --held-out shifted scenes of the evaluation seeds
(never trained on), with the network alone: mIoU of one centre click and of a box, and the
annotator's clicks per accepted mask. Prints and writes (--out) the figures as JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
from PIL import Image

import segany
from segany.data.scenes import (
    EVAL_BASE_SEED,
    TRAIN_BASE_SEED,
    SceneConfig,
    generate_scene,
    scene_seed,
)
from segany.eval.annotator import annotate_image, summarize_annotations
from segany.eval.promptable import evaluate_scene, summarize
from segany.server.auth import add_user, issue_token
from segany.server.config import ServerConfig
from segany.server.database import open_database
from segany.server.engine_round import Item, auto_stage, manual_stage, semi_stage
from segany.server.loadtest import ServerProcess
from segany.server.retrain import retrain
from segany.weights import load_state_dict_file

SCENES = SceneConfig(domain="shifted")
LOOSE = {"points_per_side": 16, "pred_iou_thresh": 0.5, "stability_score_thresh": 0.5}


def held_out_figures(model: segany.models.Sam, count: int, accept_iou: float) -> dict[str, float]:
    """mIoU (centre click, box; the network alone) and the annotator's figures on the
    first ``count`` held-out shifted scenes."""
    predictor = segany.Predictor(model, cache_size=0)
    rows, annotations = [], []
    rng = np.random.default_rng(0)
    for i in range(count):
        scene = generate_scene(scene_seed(EVAL_BASE_SEED, i), SCENES)
        rows += evaluate_scene(predictor, scene, 1, rng)
        annotations += annotate_image(predictor, scene.image, scene.masks, accept_iou)
    table = summarize(rows)["all"]
    clicks = summarize_annotations(annotations)
    return {
        "miou_centre_click": table["centre"],
        "miou_box": table["box"],
        "objects": table["objects"],
        **{f"annotator_{k}": v for k, v in clicks.items()},
    }


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manual", type=int, default=24)
    parser.add_argument("--semi", type=int, default=6)
    parser.add_argument("--auto", type=int, default=6)
    parser.add_argument("--held-out", type=int, default=12)
    parser.add_argument("--accept-iou", type=float, default=0.9)
    parser.add_argument("--config", type=Path, help="JSON of retraining settings")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    settings: dict[str, Any] = json.loads(args.config.read_text()) if args.config else {}
    work = Path(tempfile.mkdtemp(prefix="segany-bench-engine-"))
    url = f"sqlite:///{work}/segany.db"
    db = open_database(url)
    with db.session() as session:
        token = issue_token(session, add_user(session, "annotator")).token
    figures: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "settings": settings}
    base = segany.load_model("segany_shapes")
    began = time.perf_counter()
    figures["before"] = held_out_figures(base, args.held_out, args.accept_iou)
    figures["before"]["seconds"] = round(time.perf_counter() - began, 1)
    print(json.dumps({"before": figures["before"]}, indent=2), flush=True)
    total = args.manual + args.semi + args.auto
    with ServerProcess(work / "data", url, "--queue", "64") as server:
        http = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=600
        )
        project = http.post("/api/projects", json={"name": "shifted"}).json()["id"]
        http.patch(f"/api/projects/{project}/settings", json=LOOSE).raise_for_status()
        items = []
        for i in range(total):
            scene = generate_scene(scene_seed(TRAIN_BASE_SEED, 10_000 + i), SCENES)
            files = {"file": (f"scene{i}.png", _png(scene.image), "image/png")}
            row = http.post(f"/api/projects/{project}/images", files=files).json()
            items.append(Item(row, list(scene.masks)))
        manual_items = items[: args.manual]
        semi_items = items[args.manual : args.manual + args.semi]
        auto_items = items[args.manual + args.semi :]

        began = time.perf_counter()
        figures["manual"] = manual_stage(http, project, manual_items, args.accept_iou)
        figures["manual"]["seconds"] = round(time.perf_counter() - began, 1)
        print(json.dumps({"manual": figures["manual"]}, indent=2), flush=True)

        began = time.perf_counter()
        config = ServerConfig(data_dir=work / "data", db_url=url)
        done = retrain(db, config, project, work / "run", settings, activate=True)
        figures["retrain"] = {
            "images": done.images,
            "masks": done.masks,
            "seconds": round(time.perf_counter() - began, 1),
            "version": done.version.label,
        }
        new = segany.load_model("segany_shapes")
        new.load_state_dict(load_state_dict_file(work / "run" / "model.safetensors"))
        figures["after"] = held_out_figures(new, args.held_out, args.accept_iou)
        print(json.dumps({k: figures[k] for k in ("retrain", "after")}, indent=2), flush=True)
        deadline = time.monotonic() + 60
        while http.get("/api/model").json()["weights_sha256"] != done.version.weights_sha256:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not switch to the retrained version")
            time.sleep(0.2)

        began = time.perf_counter()
        figures["semi"] = semi_stage(http, project, semi_items, args.accept_iou)
        figures["semi"]["seconds"] = round(time.perf_counter() - began, 1)
        began = time.perf_counter()
        figures["auto"] = auto_stage(http, project, auto_items)
        figures["auto"]["seconds"] = round(time.perf_counter() - began, 1)
    db.close()
    before, after = figures["before"], figures["after"]
    figures["gain"] = {
        key: after[key] - before[key]
        for key in ("miou_centre_click", "miou_box", "annotator_clicks_per_accepted")
        if not (math.isnan(after[key]) or math.isnan(before[key]))
    }
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
