"""``segany eval``: promptable mIoU on held-out generated scenes, by prompt type and size.

``segany eval proposals`` (:mod:`segany.cli.eval_proposals`) scores SegEvery's masks instead.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
from pathlib import Path
from typing import Any

from segany.cli import eval_proposals
from segany.cli.common import (
    add_stage_arguments,
    non_negative_int,
    positive_int,
    staged,
    stages_from_args,
)

__all__ = ["format_table", "register", "run"]

DOMAIN_NAMES = ("default", "shifted")  # segany.data.domains.DOMAINS (not imported at start-up)
_COLUMNS = ("centre", "centre_oracle", "random", "box", "noisy_box", "box_fill")


def register(commands: Any) -> None:
    """Add the ``eval`` subcommand."""
    parser = commands.add_parser(
        "eval",
        help="promptable mIoU on held-out generated scenes (by prompt type and object size)",
        description=(
            "Evaluate a model on generated scenes from the evaluation seed range (never "
            "used in training): mIoU for a centre click, a random click, the tight box, a "
            "noisy box and k corrective clicks, next to the filled-box baseline. "
            "'segany eval proposals' reports SegEvery's mask recall (AR) instead."
        ),
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="registered model name (default: the default model)")
    source.add_argument("--checkpoint", type=Path, help="weights file")
    parser.add_argument("--scenes", type=positive_int, default=200, help="number of scenes (200)")
    parser.add_argument(
        "--domain", choices=DOMAIN_NAMES, default="default",
        help="scene domain: 'default' (the bundled model's training scenes) or 'shifted' "
        "(shapes, fills and colours it never saw; docs/data_engine.md)",
    )  # fmt: skip
    parser.add_argument("--clicks", type=non_negative_int, default=3, help="corrective clicks (3)")
    parser.add_argument(
        "--click-masks", type=int, choices=(1, 3), default=3,
        help="masks answering each corrective click, the best by score kept (3)",
    )  # fmt: skip
    parser.add_argument(
        "--no-merge",
        dest="merge",
        action="store_false",
        help="take each corrective click's answer as it is (SAM's protocol) instead of "
        "merging it into the previous mask around the click",
    )
    parser.add_argument(
        "--box-masks", choices=("auto", "1", "3"), default="auto",
        help="masks answering each box, the best by score kept: 'auto' (3 when a box "
        "ranker of --stages picks among them, else 1)",
    )  # fmt: skip
    parser.add_argument("--seed", type=non_negative_int, default=0, help="prompt-noise seed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--mode", choices=("exact", "fast"), default="exact", help="execution mode (exact)"
    )
    add_stage_arguments(parser)
    parser.add_argument(
        "--jobs", type=positive_int, default=1,
        help="worker processes sharing the scenes, each with cores / N threads (1); the "
        "figures do not depend on it",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    parser.set_defaults(func=run)
    eval_proposals.register(parser)


def format_table(table: dict[str, dict[str, float]]) -> str:
    """A Markdown table: one row per object-size bin, one column per prompt type."""
    clicks = sorted(k for k in table["all"] if k.startswith("clicks_"))
    columns = ["objects", *_COLUMNS, *clicks]
    lines = ["| size | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, entry in table.items():
        cells = []
        for column in columns:
            value = entry.get(column, math.nan)
            cells.append(f"{int(value)}" if column == "objects" else f"{value:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the table (and write JSON when asked)."""
    from segany.data.scenes import EVAL_BASE_SEED, SceneConfig, SceneDataset
    from segany.errors import InputError
    from segany.eval import summarize
    from segany.eval.promptable import box_masks_of, promptable_rows
    from segany.eval.workers import map_scenes

    if args.json is not None and not args.json.parent.is_dir():
        raise InputError(f"--json: folder {args.json.parent} does not exist")
    predictor = predictor_from_args(args)
    model = predictor.model
    scenes = SceneDataset(args.scenes, EVAL_BASE_SEED, SceneConfig(domain=args.domain))
    box_masks = box_masks_of(predictor, None if args.box_masks == "auto" else int(args.box_masks))
    options = {"clicks": args.clicks, "seed": args.seed, "click_masks": args.click_masks,
               "box_masks": box_masks, "merge": args.merge}  # fmt: skip
    work = functools.partial(promptable_rows, **options)
    build = functools.partial(predictor_from_args, args) if args.jobs > 1 else lambda: predictor
    per_scene = map_scenes(build, work, scenes, args.jobs, not args.quiet)
    rows = [row for rows in per_scene for row in rows]
    table = summarize(rows)
    stages = getattr(predictor, "stages", None)
    after = stages.describe() if stages is not None else "none"
    scenes, objects = args.scenes, len(rows)
    where = "" if args.domain == "default" else f" ({args.domain} domain)"
    print(
        f"model {model.name}, mask stages: {after}; {scenes} held-out scenes{where}, "
        f"{objects} objects"
    )
    print(format_table(table))
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "model": model.name,
                    "domain": args.domain,
                    "stages": list(stages.names) if stages is not None else [],
                    "zoom": list(stages.zoom.windows) if stages and stages.zoom else None,
                    "click_masks": args.click_masks,
                    "merge": args.merge,
                    "box_masks": box_masks,
                    "table": table,
                },
                indent=2,
            )
        )
    return 0


def predictor_from_args(args: argparse.Namespace) -> Any:
    """The predictor the options ask for, with its ``--stages`` (in this process, and in
    each ``--jobs`` worker)."""
    import segany

    model = segany.load_model(args.model, checkpoint=args.checkpoint, mode=args.mode)
    return staged(segany.Predictor(model, cache_size=0), stages_from_args(args, model))
