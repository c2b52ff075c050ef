"""The bundled model's box answers after each of its mask stages, side by side.

Run ``.venv/bin/python examples/show_refiner.py`` to write ``docs/pictures/refiner.png``:
one row per held-out scene: the ground truth, the network's masks for every object's tight
box (a plain ``Predictor``, as the official code gives them), the masks after the opt-in
refiner (``segany.refine``), and the refined masks snapped by the graph cut, each titled
with its box mIoU on that scene.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import segany
from segany import refine
from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
from segany.eval.promptable import iou
from segany.visualize import overlay_masks

TITLE = 22  # pixels of caption above each panel


def panel(image: np.ndarray, masks: np.ndarray, boxes: np.ndarray, caption: str) -> Image.Image:
    """One overlay with its caption above."""
    painted = Image.fromarray(overlay_masks(image, masks, boxes=boxes))
    out = Image.new("RGB", (painted.width, painted.height + TITLE), "white")
    out.paste(painted, (0, TITLE))
    ImageDraw.Draw(out).text((6, 4), caption, fill="black")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, nargs="+", default=[3, 7, 12])
    parser.add_argument("--out", type=Path, default=Path("docs/pictures/refiner.png"))
    args = parser.parse_args()
    model = segany.load_model()
    stages = refine.registered_stages(model)
    refined = stages.without("graph_cut", "ranker", "box_ranker", "zoom")
    predictors = {
        "network alone": segany.Predictor(model),
        "+ refiner": refine.StagedPredictor(segany.Predictor(model), refined),
        "+ graph cut": refine.StagedPredictor(segany.Predictor(model), stages.without("zoom")),
    }
    dataset = SceneDataset(max(args.scenes) + 1, EVAL_BASE_SEED)
    rows = []
    for index in args.scenes:
        scene = dataset[index]
        boxes = scene.boxes.astype(np.float64)
        panels = [panel(scene.image, scene.masks, boxes, f"scene {index}: ground truth")]
        for name, predictor in predictors.items():
            predictor.set_image(scene.image)
            masks = predictor.predict(box=boxes, multimask=False).masks[:, 0]
            score = np.mean([iou(m, g) for m, g in zip(masks, scene.masks, strict=True)])
            panels.append(panel(scene.image, masks, boxes, f"{name}: box mIoU {score:.3f}"))
        row = Image.new("RGB", (sum(p.width for p in panels), max(p.height for p in panels)))
        for i, p in enumerate(panels):
            row.paste(p, (sum(q.width for q in panels[:i]), 0))
        rows.append(row)
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    for i, row in enumerate(rows):
        sheet.paste(row, (0, sum(r.height for r in rows[:i])))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
