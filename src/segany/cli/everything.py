"""``segany everything``: automatic masks for many images, with progress, resume and exports.

See :mod:`segany.everything.batch` for the output layout, resume and error records and
:mod:`segany.everything.exports` for the formats. Exit status: 0 when every image is done,
1 when some images failed (listed in ``OUT/errors.jsonl``), 2 on a usage or input error
(no inputs, bad model or options), 130 when interrupted (a rerun resumes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

import segany
from segany.cli.common import add_model_arguments, demo_model_note
from segany.errors import CheckpointError, InputError
from segany.everything import MaskGenerator
from segany.everything.batch import FORMATS, Batch, expand_inputs, plan_items
from segany.models.sam import Sam
from segany.registry import get_spec, list_models

__all__ = ["register", "run"]

EXIT_SOME_FAILED = 1

_DESCRIPTION = """\
Find every object in each INPUT image (SAM's automatic mask generator) and write the masks
to the directory OUT as SA-1B JSON (one file per image), one COCO instances file, or PNG
label maps with overlays. INPUT may be image files, folders (searched recursively) or glob
patterns. Rerunning the same command skips images that are already done."""

# Generator options: (flag, keyword, type, help).
_OPTIONS: tuple[tuple[str, str, type, str], ...] = (
    ("--points-per-side", "points_per_side", int, "grid of N x N point prompts (32)"),
    (
        "--pred-iou-thresh",
        "pred_iou_thresh",
        float,
        "keep masks with predicted IoU > T (0.88; 0 with --strategy objects)",
    ),
    (
        "--stability-score-thresh",
        "stability_score_thresh",
        float,
        "keep masks with stability >= T (0.95; 0 with --strategy objects)",
    ),
    (
        "--box-nms-thresh",
        "box_nms_thresh",
        float,
        "drop masks whose box IoU with a better one is > T, 1 disables (0.7; 1 with --strategy "
        "objects)",
    ),
    (
        "--masks-per-box",
        "masks_per_box",
        int,
        "masks per box of --strategy objects: 1 (MobileSAMv2) or 3 (whole/part/sub-part, default)",
    ),
    ("--crop-n-layers", "crop_n_layers", int, "layers of image crops, 0 = whole image (0)"),
    (
        "--min-mask-region-area",
        "min_mask_region_area",
        int,
        "remove holes and islands smaller than this many pixels (0)",
    ),
)


def register(commands: Any) -> None:
    """Add the ``everything`` subcommand to an argparse subparsers object."""
    parser = commands.add_parser(
        "everything",
        help="segment everything in many images (SA-1B, COCO or PNG output)",
        description=_DESCRIPTION,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image file, folder or glob")
    parser.add_argument(
        "-o", "--output", required=True, type=Path, metavar="OUT", help="output directory"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="sa1b",
        help="sa1b: one JSON per image (default); coco: one instances file; "
        "png: label map and overlay per image",
    )
    add_model_arguments(parser)
    for flag, dest, kind, text in _OPTIONS:
        parser.add_argument(flag, dest=dest, type=kind, default=None, metavar="N", help=text)
    parser.add_argument(
        "--strategy",
        choices=("auto", "grid", "objects"),
        default="auto",
        help="grid: SAM's point grid; objects: one box prompt per object (MobileSAMv2), "
        "boxes from --prompts; auto (default): objects for a model with its published "
        "weights and prompt head (the bundled default model: it finds more objects, "
        "docs/benchmarks.md), the grid otherwise",
    )
    parser.add_argument(
        "--prompts",
        metavar="SOURCE",
        help="box source for --strategy objects: head (the model's prompt head, default), "
        "head:PATH, yolo:PATH (Ultralytics checkpoint) or boxes:FILE (JSON of boxes by "
        "file name)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``segany everything`` with parsed arguments; return the exit status.

    Raises:
        SegAnyError: No inputs, a bad checkpoint, model or option (reported by the caller).
        OSError: The outputs cannot be written.
    """
    out_dir: Path = args.output
    items = plan_items(expand_inputs(args.inputs, exclude=out_dir))
    if not items:
        raise InputError("no image files found in the given inputs")
    batch = Batch(items, out_dir, args.format)
    pending = batch.pending()

    generator: MaskGenerator | None = None
    if pending:
        options = {dest: getattr(args, dest) for _, dest, _, _ in _OPTIONS}
        options = {key: value for key, value in options.items() if value is not None}
        model = _load_model(args.model, args.checkpoint, args.mode)
        if getattr(model, "is_random", False) and not args.quiet:
            print(
                "segany: note: this model has random weights (no trained checkpoint); "
                "masks will be meaningless",
                file=sys.stderr,
            )
        if not args.quiet:
            demo_model_note(model)
        strategy = args.strategy
        if strategy == "auto":
            published_head = (
                args.checkpoint is None
                and not getattr(model, "is_random", True)
                and _has_prompt_head(getattr(model, "name", None))
            )
            strategy = "objects" if published_head or args.prompts is not None else "grid"
        if args.prompts is not None and strategy != "objects":
            raise InputError("--prompts goes with --strategy objects")
        if strategy == "objects":
            options.update(strategy="objects", prompts=args.prompts)
        generator = MaskGenerator(model, output_mode="coco_rle", **options)

    failed = done = 0
    with tqdm(
        total=len(items),
        initial=len(items) - len(pending),
        unit="img",
        disable=args.quiet,
        file=sys.stderr,
        dynamic_ncols=True,
    ) as bar:
        # Also run with nothing pending: that rewrites errors.jsonl for this run.
        generate = _generate_with(generator) if generator is not None else _no_generate
        for outcome in batch.run(generate, pending):
            if outcome.status == "failed":
                failed += 1
                if not args.quiet:
                    bar.write(f"segany: failed: {outcome.item.file_name}: {outcome.error}")
            elif outcome.status == "done":
                done += 1
            bar.update(1)
    batch.finish()

    if failed:
        print(
            f"segany: {failed} of {len(items)} images failed, see {batch.errors_path}",
            file=sys.stderr,
        )
        return EXIT_SOME_FAILED
    if not args.quiet:
        skipped = len(items) - len(pending)
        print(f"segmented {done} image(s), {skipped} already done, outputs in {out_dir}")
    return 0


def _load_model(name: str | None, checkpoint: Path | None, mode: str = "exact") -> Sam:
    """Load the model named by ``--model``/``--checkpoint`` (the default model if neither)."""
    if checkpoint is not None and not checkpoint.is_file():
        what = "is a directory" if checkpoint.is_dir() else "does not exist"
        raise CheckpointError(f"Checkpoint file '{checkpoint}' {what}.")
    return segany.load_model(name=name, checkpoint=checkpoint, mode=mode)


def _has_prompt_head(name: str | None) -> bool:
    """Whether ``name`` is a registered model that ships a prompt head trained on its
    published weights."""
    if name not in {spec.name for spec in list_models()}:
        return False
    return get_spec(name).prompt_head is not None


def _generate_with(generator: MaskGenerator) -> Any:
    """The batch's ``generate(image, file_name)`` (box files look images up by name)."""

    def generate(image: Any, file_name: str) -> list[dict[str, Any]]:
        return generator.generate(image, name=file_name)

    return generate


def _no_generate(image: Any, file_name: str) -> list[dict[str, Any]]:
    """Stand-in generator for a run with no pending images; never called."""
    raise AssertionError("no image should be segmented")
