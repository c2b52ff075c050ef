"""``segany bench``: exact, fast and the official code side by side on this machine."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from segany.cli.common import add_model_arguments, positive_int

__all__ = ["register", "run"]


def register(commands: Any) -> None:
    """Add the ``bench`` subcommand."""
    from segany.benchmark import CASES

    parser = commands.add_parser(
        "bench",
        help="time exact, fast and the official code side by side (encoder, prompts, SegEvery)",
        description=(
            "Time segany's exact and fast modes and, when segment-anything / mobilesam are "
            "installed, the official code, on the same weights, interleaved round by round; "
            "print the medians and ratios. Models without local weights are timed with "
            "random weights (speed does not depend on their values)."
        ),
    )
    add_model_arguments(parser, with_mode=False)
    parser.add_argument("--rounds", type=positive_int, default=3, help="rounds (3)")
    parser.add_argument(
        "--cases", nargs="+", choices=CASES, default=list(CASES), help="cases to time (all)"
    )
    parser.add_argument("--no-official", action="store_true", help="do not time the official code")
    parser.add_argument("--threads", type=positive_int, help="torch threads (default: all)")
    parser.add_argument("--json", type=Path, help="also write the medians as JSON here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Benchmark and print the table."""
    import torch

    import segany
    from segany.benchmark import run_bench
    from segany.loading import cached_path
    from segany.registry import DEFAULT_MODEL, get_spec

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.checkpoint is not None:
        model = segany.load_model(args.model, checkpoint=args.checkpoint)
    else:
        spec = get_spec(args.model or DEFAULT_MODEL)
        model = segany.load_model(spec.name, pretrained=cached_path(spec) is not None)
    result = run_bench(
        model,
        against_official=not args.no_official,
        rounds=args.rounds,
        cases=tuple(args.cases),
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    weights = "random weights" if model.is_random else "trained weights"
    print(f"model {result.model} ({weights}), {torch.get_num_threads()} threads, "
          f"median of {result.rounds} rounds")  # fmt: skip
    print(result.table())
    if args.json is not None:
        args.json.write_text(json.dumps({"model": result.model, "seconds": result.seconds}))
    return 0
