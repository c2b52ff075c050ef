"""``segany segment``: segment one image from point and box prompts and write the results.

Output directory layout::

    OUT/mask_<i>.png            one 0/255 PNG per output mask (one box or points only)
    OUT/box<b>_mask<i>.png      instead, when several --box prompts are given
    OUT/overlay.png             the image with the best mask per prompt, points and boxes
    OUT/result.json             image size, model, prompts and per-mask score/area/bbox
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import segany
from segany.cli.common import (
    add_model_arguments,
    add_stage_arguments,
    demo_model_note,
    staged,
    stages_from_args,
)
from segany.data.images import load_image
from segany.errors import CheckpointError, InputError
from segany.visualize import overlay_masks, save_png

__all__ = ["parse_box", "parse_point", "register", "run"]

_DESCRIPTION = """\
Segment IMAGE from point and/or box prompts and write mask PNGs, an overlay and
result.json to the directory OUT. Coordinates are pixels of the upright image
(x to the right, y down). With several --box prompts each box is segmented
separately, together with the --point prompts if any."""


@dataclass(frozen=True)
class _Mask:
    """One output mask with its metadata."""

    file: str
    mask: np.ndarray  # HxW bool
    score: float
    box: int | None
    best: bool


def register(commands: Any) -> None:
    """Add the ``segment`` subcommand to an argparse subparsers object."""
    parser = commands.add_parser(
        "segment",
        help="segment an image from point and box prompts",
        description=_DESCRIPTION,
    )
    parser.add_argument("image", metavar="IMAGE", help="image file (any format Pillow reads)")
    parser.add_argument(
        "--point",
        action="append",
        type=parse_point,
        default=[],
        metavar="X,Y[,LABEL]",
        help="point prompt; LABEL 1 = foreground (default), 0 = background; repeatable",
    )
    parser.add_argument(
        "--box",
        action="append",
        type=parse_box,
        default=[],
        metavar="X0,Y0,X1,Y1",
        help="box prompt, corners in pixels; repeatable",
    )
    add_model_arguments(parser)
    add_stage_arguments(parser)
    parser.add_argument(
        "--single-mask",
        action="store_true",
        help="return one mask per prompt instead of three candidates",
    )
    parser.add_argument(
        "-o", "--output", required=True, type=Path, metavar="OUT", help="output directory"
    )
    parser.set_defaults(func=run)


def parse_point(text: str) -> tuple[float, float, int]:
    """Parse ``X,Y`` or ``X,Y,LABEL`` into ``(x, y, label)``; argparse ``type=`` hook.

    Raises:
        argparse.ArgumentTypeError: Wrong count, a non-number, or a label other than 0/1.
    """
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(
            f"expected X,Y or X,Y,LABEL, got {text!r} ({len(parts)} values)"
        )
    x, y = (_number(p, text) for p in parts[:2])
    label = 1
    if len(parts) == 3:
        if parts[2] not in ("0", "1"):
            raise argparse.ArgumentTypeError(
                f"label must be 1 (foreground) or 0 (background), got {parts[2]!r} in {text!r}"
            )
        label = int(parts[2])
    return x, y, label


def parse_box(text: str) -> tuple[float, float, float, float]:
    """Parse ``X0,Y0,X1,Y1`` into a box with ``x0 < x1`` and ``y0 < y1``; argparse hook.

    Raises:
        argparse.ArgumentTypeError: Wrong count, a non-number, or an empty/inverted box.
    """
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(
            f"expected X0,Y0,X1,Y1, got {text!r} ({len(parts)} values)"
        )
    x0, y0, x1, y1 = (_number(p, text) for p in parts)
    if not (x0 < x1 and y0 < y1):
        raise argparse.ArgumentTypeError(
            f"box {text!r} must have X0 < X1 and Y0 < Y1 (top-left, then bottom-right corner)"
        )
    return x0, y0, x1, y1


def _number(part: str, text: str) -> float:
    """Parse one finite coordinate out of the option value ``text``."""
    try:
        value = float(part)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{part!r} in {text!r} is not a finite number")
    return value


def run(args: argparse.Namespace) -> int:
    """Execute ``segany segment`` with parsed arguments; return the exit status.

    Raises:
        SegAnyError: Bad prompts, image, checkpoint or model (reported by the caller).
        OSError: The outputs cannot be written.
    """
    points = [(x, y) for x, y, _ in args.point]
    labels = [label for _, _, label in args.point]
    boxes: list[tuple[float, float, float, float]] = list(args.box)
    if not points and not boxes:
        raise InputError(
            "at least one prompt is required: --point X,Y[,LABEL] or --box X0,Y0,X1,Y1"
        )
    checkpoint: Path | None = args.checkpoint
    if checkpoint is not None and not checkpoint.is_file():
        what = "is a directory" if checkpoint.is_dir() else "does not exist"
        raise CheckpointError(f"Checkpoint file '{checkpoint}' {what}.")

    image = load_image(args.image)  # fail on a bad image before the slow model load
    model = segany.load_model(name=args.model, checkpoint=checkpoint, mode=args.mode)
    if getattr(model, "is_random", False):
        print(
            "segany: note: this model has random weights (no trained checkpoint); "
            "masks will be meaningless",
            file=sys.stderr,
        )
    demo_model_note(model)
    stages = stages_from_args(args, model)
    if stages is not None:
        print(f"segany: mask stages after the network: {stages.describe()}", file=sys.stderr)
    predictor = staged(segany.Predictor(model), stages)
    predictor.set_image(image)
    results = _predict(predictor, points, labels, boxes, multimask=not args.single_mask)

    out_dir: Path = args.output
    out_dir.mkdir(parents=True, exist_ok=True)
    for item in results:
        save_png(item.mask, out_dir / item.file)
    best = [item.mask for item in results if item.best]
    overlay = overlay_masks(
        image,
        np.stack(best),
        points=np.asarray(points, dtype=np.float64).reshape(-1, 2) if points else None,
        labels=np.asarray(labels, dtype=np.int64) if points else None,
        boxes=np.asarray(boxes, dtype=np.float64) if boxes else None,
    )
    save_png(overlay, out_dir / "overlay.png")
    summary = {
        "image": str(args.image),
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "model": _model_label(model, args.model, checkpoint),
        "stages": list(stages.names) if stages is not None else [],
        "prompts": {"points": [list(p) for p in points], "labels": labels, "boxes": boxes},
        "masks": [_describe(item) for item in results],
    }
    _write_json(summary, out_dir / "result.json")
    scores = ", ".join(f"{item.score:.3f}" for item in results if item.best)
    print(
        f"wrote {len(results)} mask(s), overlay.png and result.json to {out_dir} "
        f"(best score {scores})"
    )
    return 0


def _predict(
    predictor: Any,
    points: list[tuple[float, float]],
    labels: list[int],
    boxes: list[tuple[float, float, float, float]],
    *,
    multimask: bool,
) -> list[_Mask]:
    """Run the predictor and name its masks; the best mask of each prompt is flagged.

    Points and at most one box go into one call giving ``CxHxW`` masks; several boxes go
    into one batched call (each box with the same points, if any) giving ``BxCxHxW`` masks.
    """
    point_array = np.asarray(points, dtype=np.float64) if points else None
    label_array = np.asarray(labels, dtype=np.int64) if points else None
    if len(boxes) > 1:
        res = predictor.predict(
            points=point_array,
            labels=label_array,
            box=np.asarray(boxes, dtype=np.float64),
            multimask=multimask,
        )
        masks = np.asarray(res.masks, dtype=bool)
        scores = np.asarray(res.scores, dtype=np.float64)
        out: list[_Mask] = []
        for b in range(masks.shape[0]):
            out += _name_masks(masks[b], scores[b], box=b, prefix=f"box{b}_")
        return out
    res = predictor.predict(
        points=point_array,
        labels=label_array,
        box=np.asarray(boxes[0], dtype=np.float64) if boxes else None,
        multimask=multimask,
    )
    return _name_masks(
        np.asarray(res.masks, dtype=bool),
        np.asarray(res.scores, dtype=np.float64),
        box=0 if boxes else None,
        prefix="",
    )


def _name_masks(
    masks: np.ndarray, scores: np.ndarray, *, box: int | None, prefix: str
) -> list[_Mask]:
    """Wrap ``CxHxW`` masks and ``C`` scores of one prompt into named :class:`_Mask` items."""
    best = int(np.argmax(scores)) if scores.size else -1
    return [
        _Mask(f"{prefix}mask_{i}.png", masks[i], float(scores[i]), box, i == best)
        for i in range(masks.shape[0])
    ]


def _describe(item: _Mask) -> dict[str, Any]:
    """JSON record of one mask: file, score, area in pixels, tight bbox (x, y, w, h)."""
    ys, xs = np.nonzero(item.mask)
    bbox = None
    if xs.size:
        x0, y0 = int(xs.min()), int(ys.min())
        bbox = [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]
    return {
        "file": item.file,
        "score": round(item.score, 6),
        "area": int(xs.size),
        "bbox_xywh": bbox,
        "box": item.box,
        "best": item.best,
    }


def _model_label(model: Any, name: str | None, checkpoint: Path | None) -> str:
    """Name of the model for result.json: its own name, else --model, else the checkpoint."""
    for attr in ("name", "model_name"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    spec_name = getattr(getattr(model, "spec", None), "name", None)
    if isinstance(spec_name, str) and spec_name:
        return spec_name
    if name:
        return name
    if checkpoint is not None:
        return str(checkpoint)
    return "default"


def _write_json(data: dict[str, Any], path: Path) -> None:
    """Write ``data`` as indented JSON, atomically (temporary file + :func:`os.replace`)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
