"""Arguments shared by several commands."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model NAME`` and ``--checkpoint PATH`` (the architecture inferred from the file)."""
    parser.add_argument("--model", metavar="NAME", help="registered model (see 'segany models')")
    parser.add_argument(
        "--checkpoint",
        metavar="PATH",
        type=Path,
        help="weights file; the architecture is --model or inferred from the file",
    )
