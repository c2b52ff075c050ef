"""SegEvery side by side: segany MaskGenerator vs the official SamAutomaticMaskGenerator.

Both load ONE checkpoint: MobileSAM with segany's random initialisation (speed does not
depend on weight values; saved once in the temp folder), or with ``--model segany_shapes``
the bundled trained model, whose masks are real, so the outputs can be compared mask by
mask. Two measurements:

    speed   512x512 image, default options (32x32 points): end-to-end seconds, both sides,
            and whether the outputs are the same (count, IoU of matched masks)
    memory  one generator on a large image in a fresh process: peak resident memory

    .venv/bin/python benchmarks/bench_everything.py speed
    .venv/bin/python benchmarks/bench_everything.py speed --model segany_shapes --thresholds 0.1
    .venv/bin/python benchmarks/bench_everything.py memory --side ours --size 3000x4000
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import segany
from segany.data.scenes import SceneConfig, generate_scene
from segany.reference import official_sam

CHECKPOINT = Path(tempfile.gettempdir()) / "segany_bench_random_mobile_sam.pth"


def scene(height: int, width: int, seed: int) -> np.ndarray:
    """A generated test image (segany's procedural scenes), ``HxWx3`` uint8."""
    return generate_scene(seed, SceneConfig(size=(height, width))).image


def _models() -> tuple[torch.nn.Module, segany.models.Sam]:
    """Both models from one random MobileSAM checkpoint (created once, kept in the temp folder)."""
    if not CHECKPOINT.exists():
        torch.manual_seed(0)
        torch.save(segany.load_model("mobile_sam", pretrained=False).state_dict(), CHECKPOINT)
    ours = segany.load_model("mobile_sam", checkpoint=CHECKPOINT)
    official = official_sam(ours.config)
    official.load_state_dict(torch.load(CHECKPOINT, weights_only=True))
    return official.eval(), ours  # eval() after loading: MobileSAM caches attention biases


def _official_generator(model: torch.nn.Module, **options: object) -> object:
    from mobile_sam import SamAutomaticMaskGenerator  # type: ignore[import-untyped]

    return SamAutomaticMaskGenerator(model, **options)


def _match(ours: list[dict], official: list[dict]) -> tuple[int, int, float]:
    """(our count, official count, lowest IoU of the best match of each official mask)."""
    worst = 1.0
    ours_masks = [r["segmentation"] for r in ours]
    for record in official:
        ref = record["segmentation"]
        best = 0.0
        for mask in ours_masks:
            union = np.logical_or(mask, ref).sum()
            best = max(best, float(np.logical_and(mask, ref).sum() / union) if union else 1.0)
        worst = min(worst, best)
    return len(ours), len(official), worst


def _bundled_models() -> tuple[torch.nn.Module, segany.models.Sam]:
    """The bundled trained model and the official SAM classes loaded with its weights."""
    ours = segany.load_model("segany_shapes")
    official = official_sam(ours.config)
    official.load_state_dict(ours.state_dict())
    return official.eval(), ours


def speed(repeats: int, model: str, thresholds: float | None) -> None:
    """Both generators on one 512x512 image; seconds, ratio and whether outputs agree."""
    if model == "segany_shapes":
        official_model, ours_model = _bundled_models()
        from segany.data.scenes import EVAL_BASE_SEED, SceneConfig, SceneDataset

        image = SceneDataset(4, EVAL_BASE_SEED, SceneConfig(size=(512, 512)))[3].image
        name = "segany_shapes (trained)"
    else:
        official_model, ours_model = _models()
        image = scene(512, 512, seed=3)
        name = "MobileSAM (random weights)"
    options: dict[str, object] = {}
    if thresholds is not None:  # lowered so that many masks survive and are compared
        options = {"pred_iou_thresh": thresholds, "stability_score_thresh": thresholds}
    if model == "segany_shapes":
        from segment_anything import SamAutomaticMaskGenerator  # type: ignore[import-untyped]

        official = SamAutomaticMaskGenerator(official_model, **options)
    else:
        official = _official_generator(official_model, **options)
    ours = segany.MaskGenerator(ours_model, **options)
    times: dict[str, list[float]] = {"official": [], "segany": []}
    for _ in range(repeats):
        for side, gen in (("official", official), ("segany", ours)):
            start = time.perf_counter()
            with torch.inference_mode():
                out = gen.generate(image)  # type: ignore[attr-defined]
            times[side].append(time.perf_counter() - start)
            if side == "official":
                ref = out
            else:
                got = out
    n_ours, n_ref, worst = _match(got, ref)
    off, us = float(np.median(times["official"])), float(np.median(times["segany"]))
    label = "default options" if thresholds is None else f"IoU/stability thresholds {thresholds}"
    agreement = f"{n_ours} vs {n_ref} masks, worst matched IoU {worst:.4f}"
    print(f"| 512x512, 32x32 points, {name}, {label} | {off:.1f} s | {us:.1f} s | "
          f"{off / us:.2f}x | {agreement} |")  # fmt: skip


def memory(side: str, size: str, points: int, keep_all: bool, rle: bool) -> None:
    height, width = (int(v) for v in size.split("x"))
    if not CHECKPOINT.exists():
        _models()  # creates the checkpoint; measure in a fresh process next time
        print(f"created {CHECKPOINT}; run again to measure")
        return
    tile = scene(height // 4, width // 4, seed=5)  # tiled: generating 12 MP costs memory itself
    image = np.ascontiguousarray(np.tile(tile, (4, 4, 1)))
    # keep_all: no IoU/stability filter and no box NMS, so every candidate is upsampled
    options: dict[str, object] = {}
    if keep_all:
        options.update(pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    if rle:  # the output itself: 187 binary 12 MP masks are 2.2 GB as bool arrays
        options.update(output_mode="coco_rle")
    if side == "official":
        from mobile_sam import sam_model_registry  # type: ignore[import-untyped]

        official = sam_model_registry["vit_t"]()
        official.load_state_dict(torch.load(CHECKPOINT, weights_only=True))
        gen = _official_generator(official.eval(), points_per_side=points, **options)
    else:
        model = segany.load_model("mobile_sam", checkpoint=CHECKPOINT)
        gen = segany.MaskGenerator(model, points_per_side=points, **options)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    with torch.inference_mode():
        records = gen.generate(image)  # type: ignore[attr-defined]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| {side} | {height}x{width} | {points}x{points} | {len(records)} masks | "
          f"peak RSS {peak:,.0f} MB (before generate {before:,.0f} MB) | "
          f"{time.perf_counter() - start:.0f} s |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("speed", "memory"))
    parser.add_argument("--side", choices=("ours", "official"), default="ours")
    parser.add_argument("--size", default="3000x4000", help="HxW for the memory run")
    parser.add_argument("--points", type=int, default=8, help="points per side (memory run)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--model", choices=("mobile_sam", "segany_shapes"), default="mobile_sam",
        help="speed run: random-weight MobileSAM, or the bundled trained model",
    )  # fmt: skip
    parser.add_argument(
        "--thresholds", type=float, help="speed run: lowered IoU/stability thresholds"
    )
    parser.add_argument("--keep-all", action="store_true", help="memory run without filters")
    parser.add_argument("--rle", action="store_true", help="output_mode coco_rle (memory run)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.what == "speed":
        speed(args.repeats, args.model, args.thresholds)
    else:
        memory(args.side, args.size, args.points, args.keep_all, args.rle)


if __name__ == "__main__":
    main()
