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

from segany.cli.eval import predictor_from_args
from segany.cli.main import build_parser
from segany.data.scenes import EVAL_BASE_SEED, Scene, SceneDataset
from segany.engine.workers import map_scenes
from segany.eval import summarize
from segany.eval.promptable import centre_click


def centre_rows(predictor: Any, index: int, scene: Scene) -> list[dict[str, float]]:
    """Per object of ``scene``: its area and the centre click's IoUs (picked, best of 3)."""
    predictor.set_image(scene.image)
    return [{"area": float(gt.sum()), **centre_click(predictor, gt)[1]} for gt in scene.masks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenes", type=int, help="held-out scenes (the first N)")
    parser.add_argument("eval_options", nargs=argparse.REMAINDER, help="-- segany eval options")
    ours = parser.parse_args()
    options = [o for o in ours.eval_options if o != "--"]
    args = build_parser().parse_args(["eval", *options])
    scenes = SceneDataset(ours.scenes, EVAL_BASE_SEED)
    build = functools.partial(predictor_from_args, args)
    per_scene = map_scenes(build, centre_rows, scenes, args.jobs, progress=sys.stderr.isatty())
    table = summarize([row for rows in per_scene for row in rows])
    print("| size | objects | centre | centre oracle |\n|---|---|---|---|")
    for size, entry in table.items():
        row = f"{entry['centre']:.3f} | {entry['centre_oracle']:.3f}"
        print(f"| {size} | {int(entry['objects'])} | {row} |")


if __name__ == "__main__":
    main()
