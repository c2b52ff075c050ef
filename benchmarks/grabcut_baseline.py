"""How separable are the generated scenes? GrabCut in the tight box, beside box fill.

A classical, untrained reference for ``segany eval``'s tight-box column: OpenCV's GrabCut
(colour mixture models and a graph cut, 5 iterations) started from each instance's tight
box with one pixel of margin, on the same held-out scenes (``EVAL_BASE_SEED``). It says how
much of a box prompt's answer the pixels' colours alone give away, so how far a learnt
model is from what the scenes allow. mIoU by instance kind and by size (COCO's bounds).

    .venv/bin/python benchmarks/grabcut_baseline.py --scenes 200 --json grabcut.json
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
from segany.eval.promptable import SIZE_BINS, box_fill, iou


def grabcut_in_box(image: npt.NDArray[np.uint8], box: npt.NDArray[np.float64]) -> np.ndarray:
    """``HxW`` bool mask: GrabCut from the XYXY (inclusive) ``box`` of the RGB ``image``."""
    height, width = image.shape[:2]
    x0, y0 = max(0, int(box[0]) - 1), max(0, int(box[1]) - 1)
    x1, y1 = min(width - 1, int(box[2]) + 1), min(height - 1, int(box[3]) + 1)
    labels = np.zeros((height, width), np.uint8)
    models = (np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64))
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    rect = (x0, y0, x1 - x0 + 1, y1 - y0 + 1)
    try:
        cv2.grabCut(bgr, labels, rect, *models, 5, cv2.GC_INIT_WITH_RECT)
    except cv2.error:  # a degenerate box (one colour): no answer
        return np.zeros((height, width), bool)
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=50)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    scores: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for scene in tqdm(SceneDataset(args.scenes, EVAL_BASE_SEED), unit="scene"):
        for mask, box, kind in zip(scene.masks, scene.boxes, scene.kinds, strict=True):
            area = int(mask.sum())
            size = next(name for name, low, high in SIZE_BINS if low <= area < high)
            pair = (
                iou(grabcut_in_box(scene.image, box), mask),
                iou(box_fill(box, mask.shape), mask),
            )
            for key in ("all", size, kind):
                scores[key].append(pair)
    table = {k: {"objects": len(v), "grabcut": float(np.mean([p[0] for p in v])),
                 "box_fill": float(np.mean([p[1] for p in v]))}
             for k, v in sorted(scores.items(), key=lambda kv: -len(kv[1]))}  # fmt: skip
    print("| instances | objects | GrabCut in the box | box fill |\n|---|---|---|---|")
    for key, row in table.items():
        print(f"| {key} | {row['objects']} | {row['grabcut']:.3f} | {row['box_fill']:.3f} |")
    if args.json is not None:
        args.json.write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
