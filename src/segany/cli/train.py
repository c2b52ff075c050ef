"""``segany train``: SAM-style promptable training on generated scenes, or fine-tuning the
served model on a project's accepted annotations (``--from-project``,
:mod:`segany.cli.train_project`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from segany.cli import train_project, train_prompt_head, train_ranker, train_refiner
from segany.cli.common import non_negative_int, positive_float, positive_int
from segany.errors import InputError

__all__ = ["register", "run"]


def register(commands: Any) -> None:
    """Add the ``train`` subcommand."""
    from segany.train.config import TrainConfig

    parser = commands.add_parser(
        "train",
        help="train a model promptably on generated scenes (checkpoints, resume)",
        description=(
            "Train a registered architecture with SAM's interactive recipe on procedurally "
            "generated scenes. Writes OUT/checkpoint.pt every --checkpoint-every steps, "
            "OUT/log.jsonl, OUT/config.json and, at the end, OUT/model.safetensors. "
            "An existing checkpoint is never overwritten without --overwrite."
        ),
    )
    parser.add_argument("-o", "--out", type=Path, help="run directory (required)")
    parser.add_argument("--model", default="segany_shapes", help="architecture to train")
    defaults = TrainConfig()
    parser.add_argument(
        "--steps",
        type=positive_int,
        help=f"total steps ({defaults.steps}); with --resume, lengthens or shortens the run",
    )
    parser.add_argument(
        "--images-per-step", type=positive_int, help=f"({defaults.images_per_step})"
    )
    parser.add_argument(
        "--prompts-per-image", type=positive_int, help=f"({defaults.prompts_per_image})"
    )
    parser.add_argument("--lr", type=positive_float, help=f"peak learning rate ({defaults.lr})")
    parser.add_argument("--seed", type=non_negative_int, help=f"({defaults.seed})")
    parser.add_argument(
        "--checkpoint-every", type=positive_int, help=f"({defaults.checkpoint_every})"
    )
    parser.add_argument(
        "--fp32",
        action="store_true",
        help="train in fp32 (default: bf16 where the CPU has AVX-512 BF16 or AMX, else fp32)",
    )
    parser.add_argument("--config", type=Path, help="JSON file of further training settings")
    parser.add_argument(
        "--init",
        type=Path,
        help="start from these weights (e.g. the bundled model) instead of random",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue OUT/checkpoint.pt")
    group.add_argument("--overwrite", action="store_true", help="start OUT afresh")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    train_project.add_arguments(parser)
    parser.set_defaults(func=run)
    more = parser.add_subparsers(title="other training", metavar="{prompt-head,refiner,ranker}")
    train_prompt_head.register(more)
    train_refiner.register(more)
    train_ranker.register(more)


def run(args: argparse.Namespace) -> int:
    """Train; print the last logged metrics as JSON."""
    from segany.registry import get_spec
    from segany.train import TrainConfig, train

    if args.out is None:
        raise InputError("the following arguments are required: -o/--out")
    get_spec(args.model)  # unknown names fail before any work
    settings: dict[str, Any] = {}
    if args.config is not None:
        try:
            settings = json.loads(args.config.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{args.config} is not valid JSON: {exc}") from exc
        if not isinstance(settings, dict):
            raise InputError(f"{args.config} must hold a JSON object of settings")
    given = {
        "steps": args.steps,
        "images_per_step": args.images_per_step,
        "prompts_per_image": args.prompts_per_image,
        "lr": args.lr,
        "seed": args.seed,
        "checkpoint_every": args.checkpoint_every,
    }
    if args.resume:
        changed = sorted(k for k, v in given.items() if v is not None and k != "steps")
        if changed or args.config is not None or args.fp32:
            names = ", ".join("--" + k.replace("_", "-") for k in changed) or "--config/--fp32"
            raise InputError(
                f"--resume keeps the run's settings; only --steps may change ({names})"
            )
    settings.update({k: v for k, v in given.items() if v is not None})
    settings.update(model=args.model)
    if args.fp32:
        settings["bf16"] = False
    if args.from_project is not None:
        return train_project.run(args, settings)
    train_project.refuse_without_project(args)
    config = TrainConfig.from_dict(settings)
    model = None
    if args.init is not None:
        import segany

        model = segany.load_model(args.model, checkpoint=args.init)
    result = train(
        config,
        args.out,
        resume=args.resume,
        steps=args.steps if args.resume else None,
        overwrite=args.overwrite,
        progress=not args.quiet,
        model=model,
    )
    print(json.dumps(result, indent=2))
    return 0
