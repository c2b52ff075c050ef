"""Where fast SegEvery masks stop matching exact ones: the box NMS, the filters or the masks.

Three engines run on the same scenes: ``exact``; ``fast`` (the default fast mode: bf16
encoder, and a mask decoder narrower than ``BF16_DECODER_MIN_DIM`` such as the bundled
model's kept in fp32); and ``fast_bf16`` (the decoder cast to bf16 as well: the fast mode
before 2026-12-03).

Grid SegEvery (32x32, filters lowered to the bundled model's IoU head: 0.1 / 0.35) runs in
the three engines on the same held-out scenes, interleaved scene by scene, once per variant
of the options:

* ``default``: the box NMS at 0.7 (what ``fast_quality.py`` measures);
* ``nms_off``: no box NMS (near-duplicate masks all kept);
* ``no_filters``: no NMS and no IoU or stability filter.

For each, and each fast engine, the share of exact masks that a fast mask matches at IoU
>= 0.9, a histogram of the best IoU of those that are not matched, and seconds per image.

    .venv/bin/python benchmarks/segevery_match.py --scenes 5 --variants default nms_off
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import segany
from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
from segany.eval.mask_iou import mask_iou_matrix

BASE = {"pred_iou_thresh": 0.1, "stability_score_thresh": 0.35, "output_mode": "coco_rle"}
VARIANTS: dict[str, dict[str, float]] = {
    "default": {},
    "nms_off": {"box_nms_thresh": 1.0},
    "no_filters": {"box_nms_thresh": 1.0, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0},
}
BINS = [0.0, 0.3, 0.5, 0.7, 0.8, 0.9]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=5)
    parser.add_argument("--model", default="segany_shapes")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["default"])
    args = parser.parse_args()
    scenes = SceneDataset(args.scenes, EVAL_BASE_SEED)
    models = {m: segany.load_model(args.model, mode=m) for m in ("exact", "fast")}
    # the fast mode before 2026-12-03: the narrow decoder in bf16 as well
    models["fast_bf16"] = segany.load_model(args.model, mode="fast")
    models["fast_bf16"].mask_decoder.to(torch.bfloat16)
    for name in args.variants:
        options = {**BASE, **VARIANTS[name]}
        generators = {m: segany.MaskGenerator(model, **options) for m, model in models.items()}
        seconds = dict.fromkeys(generators, 0.0)
        found: dict[str, list[list[np.ndarray]]] = {m: [] for m in generators}
        for i in range(args.scenes):
            image = scenes[i].image
            for m, gen in generators.items():  # interleaved: noise hits all alike
                began = time.perf_counter()
                found[m].append([r["segmentation"] for r in gen.generate(image)])
                seconds[m] += time.perf_counter() - began
        total = sum(len(masks) for masks in found["exact"])
        print(f"{name}: exact {total} masks, {seconds['exact'] / args.scenes:.2f} s/image")
        for m in ("fast", "fast_bf16"):
            matched = 0
            best: list[float] = []
            for exact, fast in zip(found["exact"], found[m], strict=True):
                if exact and fast:
                    scores = np.asarray(mask_iou_matrix(exact, fast).max(1))
                    best += scores.tolist()
                    matched += int((scores >= 0.9).sum())
            misses = np.array([b for b in best if b < 0.9])
            histogram = np.histogram(misses, bins=BINS)[0].tolist()
            print(
                f"  {m}: {sum(len(f) for f in found[m])} masks, matched "
                f"{matched / max(1, total):.1%}, {seconds[m] / args.scenes:.2f} s/image; "
                f"unmatched by best IoU {BINS}: {histogram}",
                flush=True,
            )


if __name__ == "__main__":
    main()
