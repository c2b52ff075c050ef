"""The centre click answered with and without zoomed crops, on the held-out scenes.

Every object of the first ``--scenes`` held-out scenes gets a click at its most interior
point, answered by the default ``Predictor`` (with the registered ``ClickZoom``: the whole
image and crops around the click, the best-scored answer kept) and by the same predictor
without zoom. Prints a markdown table by size (the pick, by the ranker's score, and the
oracle of the 3 masks answered) and draws the objects that zoom helped most: the ground
truth, the answer on the whole image, and the zoomed answer with its crops.

    .venv/bin/python benchmarks/zoom_probe.py --scenes 30 --picture docs/pictures/zoom.png
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
from segany.data.masks import binary_iou, interior_point
from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
from segany.eval.promptable import SIZE_BINS
from segany.visualize import overlay_masks, save_png


def scene_rows(plain: segany.Predictor, zoomed: segany.Predictor, scene, index: int) -> list:
    """One row per object: area, click, and the pick's and oracle's IoU without and with
    zoom (``plain_pick``, ``zoom_oracle``, ...)."""
    rows = []
    for predictor in (plain, zoomed):
        predictor.set_image(scene.image)
    for j, truth in enumerate(scene.masks):
        truth = truth.astype(bool)
        click = interior_point(truth)
        row: dict = {"scene": index, "object": j, "area": float(truth.sum()), "click": click}
        for name, predictor in (("plain", plain), ("zoom", zoomed)):
            answer = predictor.predict(points=[list(click)], labels=[1])
            row[f"{name}_pick"] = binary_iou(answer.masks[int(np.argmax(answer.scores))], truth)
            row[f"{name}_oracle"] = max(binary_iou(m, truth) for m in answer.masks)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    keys = ("plain_pick", "zoom_pick", "plain_oracle", "zoom_oracle")
    lines = ["| size | objects | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
    for name, low, high in (("all", 0.0, np.inf), *SIZE_BINS):
        chosen = [r for r in rows if low <= r["area"] < high]
        if chosen:
            means = " | ".join(f"{np.mean([r[k] for r in chosen]):.3f}" for k in keys)
            lines.append(f"| {name} | {len(chosen)} | {means} |")
    return "\n".join(lines)


def picture(rows: list[dict], scenes: SceneDataset, zoomed: segany.Predictor, path: Path) -> None:
    """The 4 objects zoom helped most, each around its smallest crop (1.5x), enlarged:
    the truth, the whole image's answer, and the zoomed answer with its crops."""
    zoom = zoomed.zoom
    assert zoom is not None
    plain = segany.Predictor(zoomed.model, cache_size=0, zoom=None)
    positive = np.array([1])

    def crops_of(row: dict) -> list:
        shape = scenes[row["scene"]].image.shape[:2]
        return zoom.crops(shape, np.array([row["click"]]), positive)

    chosen = sorted(
        (r for r in rows if crops_of(r)), key=lambda r: r["plain_pick"] - r["zoom_pick"]
    )
    strips = []
    side = 256
    for row in chosen[:4]:
        scene = scenes[row["scene"]]
        height, width = scene.image.shape[:2]
        click = np.array([row["click"]])
        crops = crops_of(row)
        x0, y0, x1, y1 = crops[-1]
        half = 0.75 * max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        left, top = int(max(cx - half, 0)), int(max(cy - half, 0))
        right, bottom = int(min(cx + half, width)), int(min(cy + half, height))
        scale = side / max(right - left, bottom - top)
        size = (round((right - left) * scale), round((bottom - top) * scale))

        rect = (left, top, right, bottom)
        masks = [scene.masks[row["object"]].astype(bool)]
        for predictor in (plain, zoomed):
            predictor.set_image(scene.image)
            answer = predictor.predict(points=click, labels=[1])
            masks.append(answer.masks[int(np.argmax(answer.scores))])
        at = (click - [left, top]) * scale
        boxes = (np.array(crops, dtype=float) - [left, top, left, top]) * scale
        panels = [
            overlay_masks(_view(scene.image, rect, size), _view(m, rect, size)[None] > 0, points=at,
                          boxes=boxes if k == 2 else None)
            for k, m in enumerate(masks)
        ]  # fmt: skip
        strips.append(np.concatenate([np.pad(p, ((2, 2), (2, 2), (0, 0)), constant_values=255)
                                      for p in panels], axis=1))  # fmt: skip
    width = max(s.shape[1] for s in strips)
    strips = [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=255)
              for s in strips]  # fmt: skip
    save_png(np.concatenate(strips, axis=0), path)


def _view(array: np.ndarray, rect: tuple, size: tuple[int, int]) -> np.ndarray:
    """The XYXY ``rect`` of ``array`` (an image or a mask), resized to ``size`` (nearest)."""
    left, top, right, bottom = rect
    region = np.ascontiguousarray(array[top:bottom, left:right]).astype(np.uint8)
    return cv2.resize(region, size, interpolation=cv2.INTER_NEAREST)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--picture", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    model = segany.load_model("segany_shapes")
    zoomed = segany.Predictor(model, cache_size=0)
    plain = segany.Predictor(model, cache_size=0, zoom=None)
    print("zoom:", zoomed.zoom)
    scenes = SceneDataset(args.scenes, EVAL_BASE_SEED)
    rows = []
    for i in tqdm(range(args.scenes), unit="scene"):
        rows += scene_rows(plain, zoomed, scenes[i], i)
    print(table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.picture is not None:
        picture(rows, scenes, zoomed, args.picture)
        print("wrote", args.picture)


if __name__ == "__main__":
    main()
