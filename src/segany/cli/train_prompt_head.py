"""``segany train prompt-head``: train object-aware SegEvery's box head for a model.

From generated scenes' ground truth (default) or, with ``--images``, by distilling grid
SegEvery on the user's own unlabelled images (the grid's mask boxes are the targets).
Writes ``OUT/prompt_head.safetensors`` (use it as ``--prompts head:PATH``),
``OUT/log.jsonl`` and ``OUT/summary.json`` (box recall on held-out scenes).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from segany.cli.common import (
    add_model_arguments,
    config_from_args,
    jsonl_log,
    output_file,
    positive_float,
    positive_int,
    weights_record,
)
from segany.errors import InputError

__all__ = ["HEAD_FILE", "register", "run"]

HEAD_FILE = "prompt_head.safetensors"


def register(commands: Any) -> None:
    """Add ``prompt-head`` under ``segany train``."""
    from segany.train.prompt_head import HeadTrainConfig

    defaults = HeadTrainConfig()
    parser = commands.add_parser(
        "prompt-head",
        help="train the box head of object-aware SegEvery (--strategy objects)",
        description=__doc__.split("\n\n", 1)[1].replace("``", "'"),
    )
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    add_model_arguments(parser)
    parser.add_argument(
        "--scenes", type=positive_int, default=1000, help="generated training scenes (1000)"
    )
    parser.add_argument(
        "--images",
        nargs="+",
        metavar="INPUT",
        help="distil grid SegEvery on these images (files, folders, globs) instead of scenes",
    )
    parser.add_argument(
        "--init", type=Path, metavar="PATH", help="fine-tune this head instead of a new one"
    )
    parser.add_argument("--epochs", type=positive_int, help=f"({defaults.epochs})")
    parser.add_argument("--lr", type=positive_float, help=f"({defaults.lr})")
    parser.add_argument("--hidden", type=positive_int, help=f"head width ({defaults.hidden})")
    parser.add_argument(
        "--eval-scenes", type=positive_int, default=50, help="held-out scenes for recall (50)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT's head")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Collect embeddings and boxes, train, save, and print the held-out recall."""
    import segany
    from segany.data.scenes import EVAL_BASE_SEED, TRAIN_BASE_SEED, SceneDataset
    from segany.prompt_heads import load_prompt_head
    from segany.train.prompt_head import (
        HeadTrainConfig,
        box_recall,
        collect_examples,
        train_prompt_head,
    )
    from segany.weights import save_state_dict_file

    out: Path = args.out
    target = output_file(out, HEAD_FILE, args.overwrite)
    config = config_from_args(HeadTrainConfig, args, ("epochs", "lr", "hidden"))
    init = load_prompt_head(path=args.init) if args.init is not None else None
    model = segany.load_model(args.model, checkpoint=args.checkpoint, mode=args.mode)
    predictor = segany.Predictor(model, cache_size=0)
    progress = not args.quiet
    if args.images:
        items, total = _distilled(model, args.images), None
    else:
        items, total = _scenes(SceneDataset(args.scenes, TRAIN_BASE_SEED)), args.scenes
    examples = collect_examples(predictor, items, progress=progress, total=total)
    if not examples:
        raise InputError("no training images found")
    out.mkdir(parents=True, exist_ok=True)
    with jsonl_log(out) as log:
        try:
            head = train_prompt_head(
                examples, model.image_size, config, progress=progress, log=log, init=init
            )
        except ValueError as exc:
            raise InputError(f"--init {args.init}: {exc}") from None
    save_state_dict_file(head.state_dict(), target)
    held_out = collect_examples(
        predictor, _scenes(SceneDataset(args.eval_scenes, EVAL_BASE_SEED)), progress=False
    )
    recall = box_recall(head, held_out, model.image_size)
    summary = weights_record(model, args.checkpoint)
    summary |= {"images": len(examples), "head": str(target), **recall}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


def _scenes(scenes: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(image, ground-truth boxes) of every scene of a SceneDataset."""
    for i in range(len(scenes)):
        scene = scenes[i]
        yield scene.image, scene.boxes


def _distilled(model: Any, inputs: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(image, boxes of grid SegEvery's masks) for every image in ``inputs``."""
    from segany.data.images import load_image
    from segany.everything import MaskGenerator
    from segany.everything.batch import expand_inputs

    paths = expand_inputs(inputs)
    if not paths:
        raise InputError("--images: no image files found")
    teacher = MaskGenerator(model, output_mode="uncompressed_rle")
    for path in paths:
        image = load_image(path)
        records = teacher.generate(image)
        boxes = np.array([r["bbox"] for r in records], dtype=np.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # XYWH -> XYXY (inclusive)
        yield image, boxes
