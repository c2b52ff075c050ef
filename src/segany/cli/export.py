"""``segany export onnx``: write a model as ONNX files for ONNX Runtime and the browser."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from segany.cli.common import add_model_arguments

__all__ = ["register", "run"]


def register(commands: Any) -> None:
    """Add the ``export`` subcommand."""
    parser = commands.add_parser(
        "export",
        help="export a model (ONNX: encoder.onnx, decoder.onnx, metadata.json)",
        description=(
            "Export a model to ONNX: OUT/encoder.onnx (preprocessed image -> embedding), "
            "OUT/decoder.onnx (many prompts per call in SAM's point format, dynamic numbers "
            "of prompts and points, mask input; runs in onnxruntime-web) and "
            "OUT/metadata.json (input size, mean/std, model and file hashes)."
        ),
    )
    parser.add_argument("format", choices=("onnx",), help="export format")
    add_model_arguments(parser, with_mode=False)
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export and print the metadata."""
    import segany
    from segany.engine.onnx_export import export_onnx

    model = segany.load_model(args.model, checkpoint=args.checkpoint)
    metadata = export_onnx(model, args.out, overwrite=args.overwrite)
    print(json.dumps(metadata, indent=2))
    return 0
