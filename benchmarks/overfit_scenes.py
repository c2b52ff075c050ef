"""Capacity check: can a model fit a handful of fixed scenes? (memorising vs learning)

Trains a model (the bundled ``segany_shapes`` by default) with box prompts on the same
``--scenes`` training scenes at every step (each step draws new objects and box noise on
them) and logs the training box IoU; the weights go to ``OUT/model.safetensors``, to be
scored on held-out scenes with ``segany eval --checkpoint``. A model that fits the fixed
scenes but not held-out ones can draw the masks and lacks the general rule; one that
cannot fit them lacks capacity (docs/training.md, "What holds the model back").

    .venv/bin/python benchmarks/overfit_scenes.py -o runs/overfit --steps 200
    .venv/bin/segany eval --checkpoint runs/overfit/model.safetensors --scenes 50
"""

from __future__ import annotations

import argparse
from unittest import mock

import segany
from segany.train import loop
from segany.train.config import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", required=True)
    parser.add_argument("--model", default="segany_shapes")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--scenes", type=int, default=8, help="fixed scenes (one step's)")
    parser.add_argument("--lr", type=float, default=3e-4)
    args = parser.parse_args()
    config = TrainConfig(
        model=args.model, steps=args.steps, images_per_step=args.scenes, lr=args.lr,
        warmup_steps=10, decay_fraction=0.0, easy_steps=0, focal_from_step=0,
        focal_ramp_steps=0, clicks=0, box_fraction=1.0, decoder_warmup_steps=0,
        attention_gain=0.0, seed=9, checkpoint_every=10_000, log_every=10,
    )  # fmt: skip
    first = loop.step_scenes
    # every step trains on step 0's scenes
    with mock.patch.object(loop, "step_scenes", lambda _, c, m: first(0, c, m)):
        last = loop.train(config, args.out, model=segany.load_model(args.model), overwrite=True)
    print(f"training box IoU after {args.steps} steps: {last['iou_box']:.3f}")


if __name__ == "__main__":
    main()
