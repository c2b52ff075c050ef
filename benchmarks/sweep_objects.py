"""Sweeps behind the object-aware SegEvery defaults: AR by objectness threshold, masks per
box and box NMS, and the grid's AR by box NMS, on the same held-out scenes.

Objects variants are given as ``conf,masks_per_box,nms`` (``0.3,3,1`` is the default). The
grid (32x32, filters lowered to this model's IoU head: 0.1 / 0.35) runs once per scene with
the NMS off; each ``--grid-nms`` threshold is then applied to its records, which is what
the generator's own NMS does on a whole image (one crop), at a fraction of the time.

    .venv/bin/python benchmarks/sweep_objects.py --scenes 50 --objects 0.3,1,0.7 0.3,3,1
    .venv/bin/python benchmarks/sweep_objects.py --scenes 50 --grid-nms 0.7 0.9 1
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

import segany
from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
from segany.eval.proposals import RecallAccumulator, proposals_from_records
from segany.everything import MaskGenerator
from segany.everything.masks import nms
from segany.everything.sources import HeadBoxes, box_source

LOWERED = {"pred_iou_thresh": 0.1, "stability_score_thresh": 0.35}


def _objects_variant(text: str) -> tuple[float, int, float]:
    conf, masks, thresh = text.split(",")
    return float(conf), int(masks), float(thresh)


def _box_nms(records: list[dict[str, Any]], thresh: float) -> list[dict[str, Any]]:
    """The records a box NMS at ``thresh`` keeps (predicted IoU as the score), in order."""
    if thresh >= 1.0 or not records:
        return records
    boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in records)],
                         dtype=torch.float32)  # fmt: skip
    scores = torch.tensor([r["predicted_iou"] for r in records], dtype=torch.float32)
    return [records[k] for k in sorted(nms(boxes, scores, thresh).tolist())]


def run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    torch.set_num_threads(args.threads)
    model = segany.load_model(args.model, mode=args.mode)
    predictor = segany.Predictor(model, cache_size=1, refiner=None, graph_cut=None)
    source = box_source(args.prompts, model.name)
    names = [f"objects {v}" for v in args.objects] + [f"grid nms {t}" for t in args.grid_nms]
    recall = {name: RecallAccumulator() for name in names}
    masks = dict.fromkeys(names, 0)
    grid = MaskGenerator(predictor, output_mode="coco_rle", box_nms_thresh=1.0, **LOWERED)
    scenes = SceneDataset(args.scenes, EVAL_BASE_SEED)
    for i in range(args.scenes):
        scene = scenes[i]
        predictor.set_image(scene.image)
        found: dict[str, list[dict[str, Any]]] = {}
        for text in args.objects:
            conf, per_box, thresh = _objects_variant(text)
            if isinstance(source, HeadBoxes):
                source.conf = conf
            generator = MaskGenerator(predictor, output_mode="coco_rle", strategy="objects",
                                      prompts=source, masks_per_box=per_box,
                                      box_nms_thresh=thresh)  # fmt: skip
            found[f"objects {text}"] = generator.generate(scene.image)
        if args.grid_nms:
            records = grid.generate(scene.image)
            for thresh in args.grid_nms:
                found[f"grid nms {thresh}"] = _box_nms(records, thresh)
        for name, records in found.items():
            masks[name] += len(records)
            recall[name].add(scene.masks, proposals_from_records(records))
        print(f"scene {i + 1}/{args.scenes}", end="\r", flush=True)
    rows = {}
    for name in names:
        summary = recall[name].result().summary()
        rows[name] = {k: v for k, v in summary.items() if k.startswith("AR") and "@1000" not in k}
        rows[name]["masks_per_image"] = masks[name] / args.scenes
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=50)
    parser.add_argument("--model", default="segany_shapes")
    parser.add_argument("--mode", default="fast", choices=("exact", "fast"))
    parser.add_argument("--prompts", default="head", help="box source (head, head:PATH, ...)")
    parser.add_argument("--objects", nargs="*", default=["0.3,1,0.7", "0.3,3,1"],
                        metavar="CONF,MASKS,NMS", help="objects variants")  # fmt: skip
    parser.add_argument("--grid-nms", nargs="*", type=float, default=[], metavar="T",
                        help="grid box-NMS thresholds (1 = off)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args()
    rows = run(args)
    print()
    print("| variant | AR@10 | AR@100 | AR_small@100 | AR_medium@100 | AR_large@100 | masks/img |")
    print("|---|---|---|---|---|---|---|")
    columns = ("AR@10", "AR@100", "AR_small@100", "AR_medium@100", "AR_large@100")
    for name, row in rows.items():
        cells = " | ".join(f"{row[k]:.3f}" for k in columns)
        print(f"| {name} | {cells} | {row['masks_per_image']:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
