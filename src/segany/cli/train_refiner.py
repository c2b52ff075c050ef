"""``segany train refiner``: train the colour-model mask refiner for a model's weights.

The model stays frozen; the refiner (segany.refine.refiner) learns to correct its masks
from the pixels on fresh generated scenes with box and click prompts. Writes
``OUT/refiner.safetensors`` (name it in a stages file for ``--stages FILE`` of 'segany
eval' and 'segany segment', or pass ``segany.refine.load_refiner(path=...)`` to ``Stages``),
``OUT/log.jsonl`` and ``OUT/summary.json`` (held-out mIoU with and without it).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from segany.cli.common import (
    add_model_arguments,
    config_from_args,
    held_out_summary,
    jsonl_log,
    non_negative_int,
    output_file,
    positive_float,
    positive_int,
    weights_record,
)

__all__ = ["REFINER_FILE", "register", "run"]

REFINER_FILE = "refiner.safetensors"


def register(commands: Any) -> None:
    """Add ``refiner`` under ``segany train``."""
    from segany.refine.train_refiner import RefinerTrainConfig

    defaults = RefinerTrainConfig()
    parser = commands.add_parser(
        "refiner",
        help="train the colour-model mask refiner on a frozen model",
        description=__doc__.split("\n\n", 1)[1].replace("``", "'"),
    )
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    add_model_arguments(parser, with_mode=False)
    parser.add_argument("--steps", type=positive_int, help=f"({defaults.steps})")
    parser.add_argument(
        "--images-per-step", type=positive_int, help=f"({defaults.images_per_step})"
    )
    parser.add_argument("--lr", type=positive_float, help=f"({defaults.lr})")
    parser.add_argument("--seed", type=non_negative_int, help=f"scene stream ({defaults.seed})")
    parser.add_argument(
        "--init", type=Path, metavar="PATH", help="fine-tune this refiner instead of a new one"
    )
    parser.add_argument(
        "--eval-scenes", type=non_negative_int, default=50, help="held-out scenes scored (50)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT's refiner")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train, save, score on held-out scenes with and without the refiner; print JSON."""
    import segany
    from segany.refine import StagedPredictor, Stages, load_refiner
    from segany.refine.train_refiner import RefinerTrainConfig, train_refiner
    from segany.weights import save_state_dict_file

    out: Path = args.out
    target = output_file(out, REFINER_FILE, args.overwrite)
    config = config_from_args(RefinerTrainConfig, args, ("steps", "images_per_step", "lr", "seed"))
    init = load_refiner(path=args.init) if args.init is not None else None
    model = segany.load_model(args.model, checkpoint=args.checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    with jsonl_log(out) as log:
        refiner = train_refiner(model, config, init, progress=not args.quiet, log=log)
    save_state_dict_file(refiner.export(), target)
    summary = weights_record(model, args.checkpoint)
    summary |= {"refiner": str(target), "init": str(args.init)}
    summary |= config.to_dict()
    held_out_summary(
        out, summary, "refiner",
        lambda chosen: StagedPredictor(segany.Predictor(model, cache_size=0), Stages(chosen)),
        refiner, args.eval_scenes, ("box", "centre", "clicks_3"),
    )  # fmt: skip
    return 0
