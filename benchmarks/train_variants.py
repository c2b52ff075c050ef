"""Short side-by-side training runs of recipe variants (how docs/training.md chose them).

    .venv/bin/python benchmarks/train_variants.py default align_warm [--steps 150]

Each variant trains segany_shapes from the same seed on the same scenes (4 images x 8
prompts per step, first prompts only) and prints the training IoU of box and point prompts
every 25 steps. Variants (words joined by "_"):

    default   PyTorch's default initialisation (the official code's)
    tn        ViT-style init: truncated normal 0.02 on every linear layer
    align     equal query/key projections in the decoder (segany.train.localise)
    warm      300 steps of the geometric decoder warm-up first
    neck      the encoder neck's last norm starts at 0.1
    group     the dense grouping loss on the encoder (weight 1)
"""

from __future__ import annotations

import argparse
import time

import torch

from segany.models.sam import build_sam
from segany.registry import get_spec
from segany.train import TrainConfig
from segany.train.grouping import GroupingProbe
from segany.train.localise import align_attention, warm_up_decoder
from segany.train.loop import lr_factor, make_optimizer, step_scenes
from segany.train.step import train_step


def run(variant: str, steps: int) -> None:
    words = set(variant.split("_"))
    settings = dict(images_per_step=4, prompts_per_image=8, clicks=0, warmup_steps=50,
                    steps=100_000, grouping_weight=1.0 if "group" in words else 0.0)  # fmt: skip
    config = TrainConfig(**settings)
    torch.manual_seed(0)
    model = build_sam(get_spec("segany_shapes").config)
    if "tn" in words:
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.trunc_normal_(module.weight, std=0.02)
                torch.nn.init.zeros_(module.bias)
    if "align" in words:
        align_attention(model)
    if "neck" in words:
        with torch.no_grad():
            model.image_encoder.neck[-1].weight.fill_(0.1)
    if "warm" in words:
        history = warm_up_decoder(model, 300, progress=False)
        print(f"{variant}: decoder warm-up box IoU {sum(history[-20:]) / 20:.3f}")
    probe = GroupingProbe(model.prompt_encoder.embed_dim) if "group" in words else None
    model.train()
    optimizer = make_optimizer(model, config, probe)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    generator = torch.Generator().manual_seed(0)
    window: dict[str, list[float]] = {"iou_box": [], "iou_point": []}
    start = time.time()
    for step in range(steps):
        loss, metrics = train_step(model, step_scenes(step, config, model), config, generator,
                                   step, probe)  # fmt: skip
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        for key, values in window.items():
            values.append(metrics.get(key, float("nan")))
        if (step + 1) % 25 == 0:
            means = {k: round(sum(v[-25:]) / 25, 3) for k, v in window.items()}
            print(f"{variant} step {step + 1}: {means} ({time.time() - start:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    torch.set_num_threads(2)
    for variant in args.variants:
        run(variant, args.steps)


if __name__ == "__main__":
    main()
