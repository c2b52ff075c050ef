"""``segany train``: SAM-style promptable training on generated scenes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from segany.errors import InputError

__all__ = ["register", "run"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(commands: Any) -> None:
    """Add the ``train`` subcommand."""
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
    parser.add_argument("-o", "--out", type=Path, required=True, help="run directory")
    parser.add_argument("--model", default="segany_shapes", help="architecture to train")
    parser.add_argument("--steps", type=_positive_int, default=6000)
    parser.add_argument("--images-per-step", type=_positive_int, default=4)
    parser.add_argument("--prompts-per-image", type=_positive_int, default=16)
    parser.add_argument("--lr", type=float, default=8e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=_positive_int, default=200)
    parser.add_argument("--fp32", action="store_true", help="train in fp32 (default: bf16)")
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train; print the last logged metrics as JSON."""
    from segany.registry import get_spec
    from segany.train import TrainConfig, train

    get_spec(args.model)  # unknown names fail before any work
    settings: dict[str, Any] = {}
    if args.config is not None:
        try:
            settings = json.loads(args.config.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{args.config} is not valid JSON: {exc}") from exc
        if not isinstance(settings, dict):
            raise InputError(f"{args.config} must hold a JSON object of settings")
    settings.update(
        model=args.model,
        steps=args.steps,
        images_per_step=args.images_per_step,
        prompts_per_image=args.prompts_per_image,
        lr=args.lr,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        bf16=not args.fp32,
    )
    config = TrainConfig.from_dict(settings)
    model = None
    if args.init is not None:
        import segany

        model = segany.load_model(args.model, checkpoint=args.init)
    result = train(
        config,
        args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.quiet,
        model=model,
    )
    print(json.dumps(result, indent=2))
    return 0
