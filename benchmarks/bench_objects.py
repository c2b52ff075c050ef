"""Object-aware SegEvery against grid SegEvery: mask AR and time, side by side.

Both strategies run on the same held-out generated scenes with the same model, engine
and Predictor (the image is encoded once per scene and shared). Per variant:

* AR@10/100/1000 (all, small, medium, large), COCO protocol, masks ranked by predicted
  IoU x stability (:mod:`segany.eval.proposals`);
* decoder seconds per image (time inside the decoder calls), end-to-end seconds per
  image (encoder + prompt source + decoding + filtering + encoding of the records);
* masks per image, and for the prompt head its own time next to the encoder's.

    .venv/bin/python benchmarks/bench_objects.py --scenes 200 --json objects.json
    .venv/bin/python benchmarks/bench_objects.py --scenes 50 --quick --prompts head:PATH
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
from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
from segany.eval.proposals import RecallAccumulator, proposals_from_records
from segany.everything import MaskGenerator
from segany.everything.sources import HeadBoxes, box_source

# (name, strategy, options)
VARIANTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("grid 32x32, official filters", "grid", {}),  # the defaults
    ("grid 32x32, lowered filters", "grid",
     {"pred_iou_thresh": 0.1, "stability_score_thresh": 0.35}),
    ("objects (default: 3 masks per box, no filter, no NMS)", "objects", {}),
    ("objects, 1 mask per box, no filter, no NMS (MobileSAMv2)", "objects",
     {"masks_per_box": 1}),
    ("objects, 1 mask per box, NMS 0.7", "objects",
     {"masks_per_box": 1, "box_nms_thresh": 0.7}),
    ("objects, official filters", "objects",
     {"pred_iou_thresh": 0.88, "stability_score_thresh": 0.95}),
    ("objects from ground-truth boxes (upper bound)", "truth", {}),
)  # fmt: skip


class _Timed:
    """Wraps a callable and adds up the seconds spent in it."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    model = segany.load_model(args.model, checkpoint=args.checkpoint, mode=args.mode)
    predictor = segany.Predictor(model, cache_size=1)
    decoder = {name: _Timed(getattr(predictor, name))
               for name in ("predict_low_res", "predict_low_res_above")}  # fmt: skip
    for name, timed in decoder.items():
        setattr(predictor, name, timed)
    source = box_source(args.prompts, model.name)
    timed_source = _Timed(source)
    head_forward = _Timed(source.head) if isinstance(source, HeadBoxes) else None
    if head_forward is not None:
        source.head = head_forward  # type: ignore[assignment]
    current: dict[str, Any] = {}

    def truth(image: np.ndarray, predictor: segany.Predictor, name: str | None) -> np.ndarray:
        return np.asarray(current["scene"].boxes, dtype=np.float64)

    generators = {}
    for index, (name, strategy, options) in enumerate(VARIANTS):
        if args.quick and index not in (0, 2):
            continue
        if strategy == "objects":
            options = {**options, "strategy": "objects", "prompts": timed_source}
        elif strategy == "truth":
            options = {**options, "strategy": "objects", "prompts": truth}
        generators[name] = MaskGenerator(predictor, output_mode="coco_rle", **options)
    scores = {name: RecallAccumulator() for name in generators}
    times = {name: {"decoder": 0.0, "end_to_end": 0.0, "masks": 0} for name in generators}
    encoder_s = head_s = source_s = 0.0
    scenes = SceneDataset(args.scenes, EVAL_BASE_SEED)
    for i in range(args.scenes):
        scene = current["scene"] = scenes[i]
        start = time.perf_counter()
        predictor.set_image(scene.image)  # encoded once; each generator reuses it
        encode = time.perf_counter() - start
        encoder_s += encode
        for name, generator in generators.items():
            before = sum(t.seconds for t in decoder.values())
            head_before = head_forward.seconds if head_forward else 0.0
            source_before = timed_source.seconds
            start = time.perf_counter()
            records = generator.generate(scene.image)
            elapsed = time.perf_counter() - start
            times[name]["decoder"] += sum(t.seconds for t in decoder.values()) - before
            times[name]["end_to_end"] += elapsed + encode
            times[name]["masks"] += len(records)
            if generator.strategy == "objects" and name == VARIANTS[2][0]:
                head_s += (head_forward.seconds if head_forward else 0.0) - head_before
                source_s += timed_source.seconds - source_before
            scores[name].add(scene.masks, proposals_from_records(records))
        print(f"scene {i + 1}/{args.scenes}", end="\r", flush=True)
    n = args.scenes
    rows = {}
    for name in generators:
        summary = scores[name].result().summary()
        rows[name] = {
            **{k: v for k, v in summary.items() if k.startswith("AR")},
            "decoder_s": times[name]["decoder"] / n,
            "end_to_end_s": times[name]["end_to_end"] / n,
            "masks_per_image": times[name]["masks"] / n,
        }
    return {
        "model": model.name, "mode": args.mode, "scenes": n, "threads": args.threads,
        "prompts": args.prompts, "encoder_s": encoder_s / n, "head_forward_s": head_s / n,
        "prompt_source_s": source_s / n, "variants": rows,
        "date": time.strftime("%Y-%m-%d"),
    }  # fmt: skip


def table(result: dict[str, Any]) -> str:
    columns = ("AR@10", "AR@100", "AR@1000", "AR_small@100", "AR_medium@100", "AR_large@100")
    head = "| variant | " + " | ".join(columns) + " | masks/img | decoder s | end-to-end s |"
    lines = [head, "|---" * (len(columns) + 4) + "|"]
    for name, row in result["variants"].items():
        cells = [f"{row[c]:.3f}" if not np.isnan(row[c]) else "-" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {row['masks_per_image']:.1f} | "
                     f"{row['decoder_s']:.3f} | {row['end_to_end_s']:.3f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--model", default="segany_shapes")
    parser.add_argument("--checkpoint", help="weights file (default: the model's own)")
    parser.add_argument("--mode", default="fast", choices=("exact", "fast"))
    parser.add_argument("--prompts", default="head", help="box source (head, head:PATH, ...)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only the default grid and unfiltered objects (the time ratios; a new box "
        "source changes neither the grid's AR nor the ground-truth upper bound)",
    )
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args()
    result = run(args)
    print()
    print(table(result))
    grid, objects = result["variants"][VARIANTS[0][0]], result["variants"][VARIANTS[2][0]]
    print(f"encoder {result['encoder_s'] * 1e3:.1f} ms, prompt head forward "
          f"{result['head_forward_s'] * 1e3:.1f} ms "
          f"({100 * result['head_forward_s'] / result['encoder_s']:.1f} % of the encoder), "
          f"whole box source {result['prompt_source_s'] * 1e3:.1f} ms")  # fmt: skip
    decoder_ratio = grid["decoder_s"] / max(objects["decoder_s"], 1e-9)
    print(f"decoder time grid / objects: {decoder_ratio:.1f}x;"
          f" end to end: {grid['end_to_end_s'] / objects['end_to_end_s']:.1f}x")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
