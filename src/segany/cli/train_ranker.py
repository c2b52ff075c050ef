"""``segany train ranker``: train the ranker of a click's (or a box's) snapped masks.

The model and its refiner (``--refiner``: the one registered with the weights, none, or
a refiner file, for weights of your own) stay frozen; on generated training scenes every
object gets a random click and a centre click followed by corrective clicks (``--prompts
clicks``), or its tight box and a noisy one (``--prompts boxes``; ``--prompts box_cut``:
the second of a box's 3 masks replaced by the box's own cut); each prompt's 3 masks are
snapped by the graph cut, and the ranker (segany.refine.ranker) learns the IoU of each
snapped mask. Writes ``OUT/ranker.safetensors`` (clicks) or ``OUT/box_ranker.safetensors``
(boxes, box_cut), ``OUT/log.jsonl`` and ``OUT/summary.json`` (held-out mIoU with and
without it). Name the file in a stages file (``--stages FILE`` of 'segany eval' and
'segany segment'), or pass ``segany.refine.read_ranker(path)`` to ``Stages``.
"""

from __future__ import annotations

import argparse
import functools
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
    refiner_argument,
    refiner_choice,
    weights_record,
)

__all__ = ["BOX_RANKER_FILE", "RANKER_FILE", "register", "run"]

RANKER_FILE = "ranker.safetensors"
BOX_RANKER_FILE = "box_ranker.safetensors"


def register(commands: Any) -> None:
    """Add ``ranker`` under ``segany train``."""
    from segany.refine.train_ranker import PROMPT_KINDS, RankerTrainConfig

    defaults = RankerTrainConfig()
    parser = commands.add_parser(
        "ranker",
        help="train the ranker of a click's (or box's) graph-cut-snapped masks",
        description=__doc__.split("\n\n", 1)[1].replace("``", "'"),
    )
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    add_model_arguments(parser, with_mode=False)
    refiner_argument(parser)
    parser.add_argument(
        "--prompts", choices=PROMPT_KINDS,
        help=f"the prompts the ranker ranks the masks of ({defaults.prompts})",
    )  # fmt: skip
    parser.add_argument("--scenes", type=positive_int, help=f"training scenes ({defaults.scenes})")
    parser.add_argument("--epochs", type=positive_int, help=f"({defaults.epochs})")
    parser.add_argument("--lr", type=positive_float, help=f"({defaults.lr})")
    parser.add_argument(
        "--clicks", type=non_negative_int,
        help=f"corrective clicks followed after each centre click ({defaults.clicks})",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=non_negative_int, help=f"training scenes' base seed ({defaults.seed})"
    )
    parser.add_argument(
        "--eval-scenes", type=non_negative_int, default=20, help="held-out scenes scored (20)"
    )
    parser.add_argument(
        "--jobs", type=positive_int, default=1,
        help="worker processes sharing the training scenes, each with cores / N threads (1); "
        "the examples do not depend on it",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace OUT's ranker")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Collect, fit, save, score on held-out scenes with and without the ranker; print JSON."""
    import segany
    from segany.refine import GraphCut, StagedPredictor, Stages
    from segany.refine.train_ranker import RankerTrainConfig, train_ranker
    from segany.weights import save_state_dict_file

    out: Path = args.out
    names = ("scenes", "epochs", "lr", "seed", "clicks", "prompts")
    config = config_from_args(RankerTrainConfig, args, names)
    boxes = config.prompts != "clicks"
    target = output_file(out, BOX_RANKER_FILE if boxes else RANKER_FILE, args.overwrite)
    collector = _collector(args)
    model, refiner = collector.model, collector.stages.refiner
    out.mkdir(parents=True, exist_ok=True)
    graph_cut = GraphCut()
    build = functools.partial(_collector, args)
    with jsonl_log(out) as log:
        ranker = train_ranker(collector, graph_cut, config, not args.quiet, log, args.jobs, build)
    save_state_dict_file(ranker.export(), target)
    stage = "box_ranker" if boxes else "ranker"
    summary = weights_record(model, args.checkpoint) | {"refiner": args.refiner, stage: str(target)}
    summary |= config.to_dict()
    keys = ("box", "noisy_box") if boxes else ("centre", "random", "clicks_3")

    def predictor_with(chosen: Any) -> Any:
        stages = Stages(refiner=refiner, graph_cut=graph_cut, **{stage: chosen})  # no zoom
        return StagedPredictor(segany.Predictor(model, cache_size=0), stages)

    held_out_summary(out, summary, stage, predictor_with, ranker, args.eval_scenes, keys)
    return 0


def _collector(args: argparse.Namespace) -> Any:
    """The predictor whose answers the ranker learns from: the model and ``--refiner``,
    no graph cut (applied by the collection itself), ranker or zoom (in this process, and
    in each ``--jobs`` worker)."""
    import segany
    from segany.refine import StagedPredictor, Stages

    model = segany.load_model(args.model, checkpoint=args.checkpoint)
    refiner = refiner_choice(args, model)
    return StagedPredictor(segany.Predictor(model, cache_size=0), Stages(refiner=refiner))
