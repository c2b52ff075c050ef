"""``segany eval proposals``: class-agnostic mask AR of SegEvery on held-out generated scenes.

Each scene of the evaluation seed range goes through :class:`segany.MaskGenerator`; its
masks, ranked by ``predicted_iou * stability_score``, are scored against the scene's
instances with :mod:`segany.eval.proposals` (COCO's protocol, or LVIS's with ``--lvis``).
The options ``--model``, ``--checkpoint``, ``--scenes``, ``--domain``, ``--mode``,
``--json`` and ``--quiet`` may also be given before ``proposals``; ``--clicks`` and
``--seed`` belong to the promptable evaluation and are refused here.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from segany.cli.common import positive_int

__all__ = ["format_table", "register", "run"]

_STRATEGIES = ("grid", "objects")
_SIZES = ("all", "small", "medium", "large")
# Generator options: (flag, keyword, help); None = MaskGenerator's default.
_THRESHOLDS = (
    ("--pred-iou-thresh", "pred_iou_thresh", "keep masks with predicted IoU > T (0.88)"),
    ("--stability-score-thresh", "stability_score_thresh", "keep masks with stability >= T (0.95)"),
    ("--box-nms-thresh", "box_nms_thresh", "NMS box IoU, 1 disables (0.7; 1 for objects)"),
)


def max_dets_list(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated whole numbers >= 1, e.g. ``10,100,1000``."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers >= 1 (e.g. 10,100,1000), got {text!r}"
        )
    return tuple(sorted(set(values)))


def finite_float(text: str) -> float:
    """argparse type: a finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def register(eval_parser: argparse.ArgumentParser) -> None:
    """Add ``proposals`` as an optional sub-command of the ``eval`` parser."""
    promptable = (
        "clicks",
        "click_masks",
        "box_masks",
        "seed",
        "stages",
    )
    promptable_only = {name: eval_parser.get_default(name) for name in promptable}
    evaluations = eval_parser.add_subparsers(
        title="other evaluations", dest="evaluation", metavar="EVALUATION"
    )
    parser = evaluations.add_parser(
        "proposals",
        help="class-agnostic mask AR@10/100/1000 of SegEvery (COCO's protocol)",
        description=(
            "Run the automatic mask generator on generated scenes from the evaluation seed "
            "range and report class-agnostic mask recall as COCO computes it (useCats=0): "
            "AR over IoU 0.50:0.05:0.95 for the top 10, 100 and 1000 masks per image by "
            "predicted IoU x stability, overall and by object size. See docs/evaluation.md."
        ),
    )
    keep = argparse.SUPPRESS  # unset here -> the value given before 'proposals' (or its default)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", default=keep, help="registered model name (default model)")
    source.add_argument("--checkpoint", type=Path, default=keep, help="weights file")
    parser.add_argument("--scenes", type=positive_int, default=keep, help="number of scenes (200)")
    parser.add_argument(
        "--domain", choices=("default", "shifted"), default=keep, help="scene domain (default)"
    )
    parser.add_argument(
        "--strategy", choices=_STRATEGIES, default="grid", help="prompt strategy (grid)"
    )
    parser.add_argument(
        "--prompts",
        metavar="SOURCE",
        help="box source of --strategy objects: head, head:PATH, yolo:PATH or boxes:FILE",
    )
    parser.add_argument(
        "--masks-per-box",
        type=int,
        choices=(1, 3),
        help="masks decoded per box of --strategy objects: 1 (MobileSAMv2) or 3 (default)",
    )
    parser.add_argument(
        "--points-per-side", type=positive_int, default=32, help="grid of N x N points (32)"
    )
    for flag, dest, text in _THRESHOLDS:
        parser.add_argument(flag, dest=dest, type=finite_float, metavar="T", help=text)
    parser.add_argument(
        "--max-dets",
        type=max_dets_list,
        metavar="N,N,...",
        help="masks per image to score (10,100,1000; 300 with --lvis)",
    )
    parser.add_argument("--lvis", action="store_true", help="LVIS's protocol (300 masks/image)")
    parser.add_argument(
        "--mode", choices=("exact", "fast"), default=keep, help="execution mode (exact)"
    )
    parser.add_argument("--json", type=Path, default=keep, help="also write the results here")
    parser.add_argument("--quiet", action="store_true", default=keep, help="no progress bar")
    parser.set_defaults(func=run, promptable_only=promptable_only)


def format_table(metrics: dict[str, float], max_dets: tuple[int, ...]) -> str:
    """A Markdown table: one row per object size, one AR column per proposal budget."""
    columns = [f"AR@{m}" for m in max_dets]
    lines = ["| size | objects | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for size in _SIZES:
        suffix = "" if size == "all" else f"_{size}"
        count = int(metrics[f"num_gt{suffix}"])
        cells = [_cell(metrics[f"AR{suffix}@{m}"]) for m in max_dets]
        lines.append(f"| {size} | {count} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Generate masks for the scenes, score them, print the table (and write JSON)."""
    from tqdm import tqdm

    import segany
    from segany.data.scenes import EVAL_BASE_SEED, SceneConfig, SceneDataset
    from segany.errors import InputError
    from segany.eval import RecallAccumulator, proposals_from_records

    _check_arguments(args)
    options: dict[str, Any] = {"points_per_side": args.points_per_side}
    for _, dest, _ in _THRESHOLDS:
        if getattr(args, dest) is not None:
            options[dest] = getattr(args, dest)
    if args.strategy != "grid":  # the keywords are new: only pass them when asked for
        options["strategy"] = args.strategy
    if args.prompts is not None:
        options["prompts"] = args.prompts
    if args.masks_per_box is not None:
        options["masks_per_box"] = args.masks_per_box
    accumulator = RecallAccumulator(max_dets=args.max_dets, lvis=args.lvis)
    model = segany.load_model(args.model, checkpoint=args.checkpoint, mode=args.mode)
    try:
        generator = segany.MaskGenerator(model, output_mode="uncompressed_rle", **options)
    except TypeError as error:
        keyword = next(
            (k for k in ("strategy", "prompts", "masks_per_box") if f"'{k}'" in str(error)), None
        )
        if keyword is None:
            raise
        raise InputError(
            f"--{keyword}: this segany's MaskGenerator has no '{keyword}' option "
            "(only SAM's point grid)"
        ) from error

    scenes = SceneDataset(args.scenes, EVAL_BASE_SEED, SceneConfig(domain=args.domain))
    generate_seconds = score_seconds = 0.0
    masks = 0
    for index in tqdm(range(len(scenes)), unit="scene", disable=args.quiet, file=sys.stderr):
        scene = scenes[index]
        start = time.perf_counter()
        records = generator.generate(scene.image)
        middle = time.perf_counter()
        accumulator.add(scene.masks, proposals_from_records(records))
        generate_seconds += middle - start
        score_seconds += time.perf_counter() - middle
        masks += len(records)

    metrics = accumulator.result().summary()
    protocol = "lvis" if args.lvis else "coco"
    per_image = generate_seconds / args.scenes
    print(
        f"model {model.name}: {args.scenes} held-out scenes, {int(metrics['num_gt'])} objects, "
        f"{masks / args.scenes:.1f} masks per image ({protocol.upper()} protocol, "
        f"strategy {args.strategy})"
    )
    print(format_table(metrics, accumulator.max_dets))
    print(f"{per_image:.3f} s per image to generate, {score_seconds / args.scenes:.3f} to score")
    if args.json is not None:
        result = {
            "model": model.name,
            "scenes": args.scenes,
            "domain": args.domain,
            "protocol": protocol,
            "max_dets": list(accumulator.max_dets),
            "generator": {"strategy": args.strategy, **options},
            "metrics": {k: (None if math.isnan(v) else v) for k, v in metrics.items()},
            "masks_per_image": masks / args.scenes,
            "seconds_per_image": per_image,
            "score_seconds_per_image": score_seconds / args.scenes,
        }
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse promptable-only options and a model given twice (before and after)."""
    from segany.errors import InputError

    for name, default in args.promptable_only.items():
        if getattr(args, name, default) != default:
            raise InputError(
                f"--{name.replace('_', '-')} is an option of the promptable 'segany eval', "
                "not of 'segany eval proposals'"
            )
    if args.model is not None and args.checkpoint is not None:
        raise InputError("argument --checkpoint: not allowed with argument --model")
    if args.json is not None and not args.json.parent.is_dir():
        raise InputError(f"--json: folder {args.json.parent} does not exist")


def _cell(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"
