"""The centre click alone, with the predictor ``segany eval`` builds from the same options.

``segany eval`` answers five kinds of prompt per object; the centre click, the one target
of issue 3 still open, is a fifth of that work. This probe answers only it (the same
prompt, pick and oracle as ``segany eval``'s ``centre`` and ``centre_oracle`` columns, which
it reproduces) for every object of the first ``N`` held-out scenes, in ``--jobs`` worker
processes, and prints mIoU by size. The options after ``--`` are ``segany eval``'s:

    .venv/bin/python benchmarks/centre_click.py 200 -- --jobs 2
    .venv/bin/python benchmarks/centre_click.py 200 -- --checkpoint runs/v12/model.safetensors \\
        --refiner runs/v12_refiner/refiner.safetensors --graph-cut on --zoom on \\
        --ranker runs/v12_ranker/ranker.safetensors --jobs 2
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any

from segany.cli.common import mask_stages
from segany.cli.main import build_parser
from segany.data.masks import binary_iou, interior_point
from segany.data.scenes import EVAL_BASE_SEED, Scene, SceneDataset
from segany.engine.workers import map_scenes
from segany.eval import summarize
from segany.session import ClickSession


def predictor_of(args: argparse.Namespace) -> Any:
    """The ``Predictor`` of ``segany eval`` with these options (one per worker)."""
    import segany

    model = segany.load_model(args.model, checkpoint=args.checkpoint, mode=args.mode)
    return segany.Predictor(model, cache_size=0, **mask_stages(args))


def centre_rows(predictor: Any, index: int, scene: Scene) -> list[dict[str, float]]:
    """Per object of ``scene``: its area, the picked mask's IoU and the best of the 3."""
    predictor.set_image(scene.image)
    rows = []
    for gt in scene.masks:
        centre = interior_point(gt)
        first = predictor.predict(points=[list(centre)], labels=[1])
        session = ClickSession(predictor)
        session.add(*centre, True, first)  # the best-scored of the 3 masks, as segany eval
        assert session.mask is not None
        rows.append({
            "area": float(gt.sum()),
            "centre": binary_iou(session.mask, gt),
            "centre_oracle": max(binary_iou(m, gt) for m in first.masks),
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenes", type=int, help="held-out scenes (the first N)")
    parser.add_argument("eval_options", nargs=argparse.REMAINDER, help="-- segany eval options")
    ours = parser.parse_args()
    options = [o for o in ours.eval_options if o != "--"]
    args = build_parser().parse_args(["eval", *options])
    scenes = SceneDataset(ours.scenes, EVAL_BASE_SEED)
    build = functools.partial(predictor_of, args)
    per_scene = map_scenes(build, centre_rows, scenes, args.jobs, progress=sys.stderr.isatty())
    table = summarize([row for rows in per_scene for row in rows])
    print("| size | objects | centre | centre oracle |\n|---|---|---|---|")
    for size, entry in table.items():
        row = f"{entry['centre']:.3f} | {entry['centre_oracle']:.3f}"
        print(f"| {size} | {int(entry['objects'])} | {row} |")


if __name__ == "__main__":
    main()
