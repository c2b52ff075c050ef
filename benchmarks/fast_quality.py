"""Quality of the fast mode: promptable mIoU of "fast" beside "exact" on the same scenes.

Both modes load the same weights (the bundled ``segany_shapes`` unless ``--checkpoint``)
and answer the same prompts (the same prompt-noise seed) on the same held-out scenes; the
table gives every prompt type's mIoU in both modes and the difference. The fast engine's
acceptance asks for point and box mIoU within 0.005 of exact on 100 scenes.

Then grid SegEvery (32x32, filters lowered to this model's IoU head: 0.1 / 0.35) in both
modes on ``--segevery-scenes`` scenes: the share of exact masks that a fast mask matches at
IoU >= 0.9 (the acceptance asks for >= 95 %), and the mask counts.

    .venv/bin/python benchmarks/fast_quality.py --scenes 100 --json fast_quality.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

import segany
from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
from segany.eval import evaluate_promptable, summarize
from segany.eval.mask_iou import mask_iou_matrix

TOLERANCE = 0.005


def run(args: argparse.Namespace) -> dict[str, Any]:
    scenes = SceneDataset(args.scenes, EVAL_BASE_SEED)
    tables: dict[str, dict[str, dict[str, float]]] = {}
    seconds: dict[str, float] = {}
    for mode in ("exact", "fast"):
        model = segany.load_model(args.model, checkpoint=args.checkpoint, mode=mode)
        predictor = segany.Predictor(model, cache_size=0)
        items = tqdm((scenes[i] for i in range(len(scenes))), total=len(scenes),
                     desc=mode, unit="scene")  # fmt: skip
        start = time.perf_counter()
        rows = evaluate_promptable(predictor, items, args.clicks, seed=0)
        seconds[mode] = time.perf_counter() - start
        tables[mode] = summarize(rows)
    options = {"pred_iou_thresh": 0.1, "stability_score_thresh": 0.35, "output_mode": "coco_rle"}
    generators = {
        mode: segany.MaskGenerator(
            segany.load_model(args.model, checkpoint=args.checkpoint, mode=mode), **options
        )
        for mode in ("exact", "fast")
    }
    matched, counts = 0, {"exact": 0, "fast": 0}
    for i in tqdm(range(args.segevery_scenes), desc="SegEvery", unit="scene"):
        image = scenes[i].image
        masks = {m: [r["segmentation"] for r in g.generate(image)] for m, g in generators.items()}
        counts = {m: counts[m] + len(masks[m]) for m in counts}
        if masks["exact"] and masks["fast"]:
            matched += int((mask_iou_matrix(masks["exact"], masks["fast"]).max(1) >= 0.9).sum())
    segevery = {"scenes": args.segevery_scenes, "masks": counts, "matched_at_0.9": matched}
    return {"scenes": args.scenes, "tables": tables, "seconds": seconds, "segevery": segevery}


def report(result: dict[str, Any]) -> str:
    exact, fast = result["tables"]["exact"]["all"], result["tables"]["fast"]["all"]
    lines = [
        f"{result['scenes']} held-out scenes, {int(exact['objects'])} objects; "
        f"evaluation time exact {result['seconds']['exact']:.0f} s, "
        f"fast {result['seconds']['fast']:.0f} s",
        "| prompt | exact mIoU | fast mIoU | fast - exact | within 0.005 |",
        "|---|---|---|---|---|",
    ]
    for key in exact:
        if key == "objects":
            continue
        diff = fast[key] - exact[key]
        ok = "yes" if abs(diff) <= TOLERANCE else "NO"
        lines.append(f"| {key} | {exact[key]:.4f} | {fast[key]:.4f} | {diff:+.4f} | {ok} |")
    every = result["segevery"]
    share = every["matched_at_0.9"] / max(1, every["masks"]["exact"])
    lines.append(
        f"\nSegEvery on {every['scenes']} scenes: {every['masks']['exact']} exact masks, "
        f"{every['masks']['fast']} fast; {share:.1%} of exact masks matched by a fast mask at "
        "IoU >= 0.9"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="registered model (the default model)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="weights file")
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--clicks", type=int, default=3)
    parser.add_argument("--segevery-scenes", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = run(args)
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
