"""Probe: a small pixel refiner trained on top of the frozen bundled model's box masks.

Does the colour in the pixels lift the box answer, and in what form? The bundled model
stays frozen; a 5-block dilated-convolution net (about 60 k parameters) learns a
correction to its low-res logits of a box prompt, from per prompt at the logits' grid
(128x128 for 512 px):

* the logit and the box (always);
* ``image``: the padded, normalised image pixel-unshuffled to the grid (48 channels at
  stride 4: every pixel's colour);
* ``affinity``: a one-step colour model, as GrabCut's first iteration: each cell's squared
  distance to the mean colour of the model's mask inside the box and to the mean colour
  of the rest of the box and a 4-cell margin, raw and 3x3-smoothed (6 channels).

Trained on fresh training scenes with box prompts (half with noise), BCE x 10 + dice, AdamW
(warm-up, cosine decay); logs the base and refined IoU of every step's prompts (fresh
scenes: a held-out estimate), then scores the tight box on ``--eval-scenes`` held-out
scenes at full resolution, by size (docs/training.md, "What holds the model back").

    .venv/bin/python benchmarks/refiner_probe.py --inputs image affinity --steps 200
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import segany
from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
from segany.engine.modes import decode_prompts, encode
from segany.eval.promptable import SIZE_BINS
from segany.models.refiner import AFFINITY_CHANNELS, colour_affinity
from segany.models.sam import Sam
from segany.train.config import TrainConfig
from segany.train.loop import step_scenes
from segany.train.targets import scene_to_tensors


class Refiner(nn.Module):
    """Residual dilated convolutions: Bx1xLxL logits in, corrected logits out."""

    def __init__(self, stride: int, inputs: set[str], width: int = 32) -> None:
        super().__init__()
        self.stride, self.inputs = stride, inputs
        channels = 2 + 3 * stride**2 * ("image" in inputs)
        channels += AFFINITY_CHANNELS * ("affinity" in inputs)
        self.stem = nn.Conv2d(channels, width, 3, padding=1)
        dilations = (1, 2, 4, 8, 1)
        self.blocks = nn.ModuleList(
            nn.Conv2d(width, width, 3, padding=d, dilation=d) for d in dilations
        )
        self.norms = nn.ModuleList(nn.GroupNorm(4, width) for _ in dilations)
        self.head = nn.Conv2d(width, 1, 1)
        nn.init.zeros_(self.head.weight)  # starts as the identity
        nn.init.zeros_(self.head.bias)

    def forward(self, pixels: torch.Tensor, logit: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        """pixels: 1x(3·s²)xLxL unshuffled image; logit, box: Bx1xLxL."""
        parts = [logit.clamp(-20, 20) / 10, box]
        if "image" in self.inputs:
            parts.append(pixels.expand(len(logit), -1, -1, -1))
        if "affinity" in self.inputs:
            side = pixels.shape[-1]
            cells = pixels.view(1, 3, self.stride**2, side, side).mean(2)
            parts.append(colour_affinity(cells, logit, box))
        hidden = F.gelu(self.stem(torch.cat(parts, 1)))
        for conv, norm in zip(self.blocks, self.norms, strict=True):
            hidden = hidden + F.gelu(norm(conv(hidden)))
        return logit + self.head(hidden)


class Probe:
    """The frozen model's box logits and the refiner's inputs for one image."""

    def __init__(self, model: Sam) -> None:
        self.model = model
        self.low_res = model.prompt_encoder.mask_input_size[0]
        self.stride = model.image_size // self.low_res

    @torch.no_grad()
    def base(self, image: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image: 3xhxw uint8 resized; boxes: Bx4 input frame -> (pixels, Bx1xLxL logits)."""
        x = self.model.preprocess(image[None].float())
        features = encode(self.model, x)
        logits, _ = decode_prompts(self.model, features, None, None, boxes, None, False)
        return F.pixel_unshuffle(x, self.stride), logits.float()

    def box_map(self, boxes: torch.Tensor) -> torch.Tensor:
        """Bx1xLxL: 1 on the cells whose centre lies in the box."""
        centres = (torch.arange(self.low_res) + 0.5) * self.stride
        xs, ys = centres[None, None, :], centres[None, :, None]
        b = boxes[:, :, None, None]
        inside = (xs >= b[:, 0]) & (xs <= b[:, 2] + 1) & (ys >= b[:, 1]) & (ys <= b[:, 3] + 1)
        return inside[:, None].float()


def mean_iou(logits: torch.Tensor, target: torch.Tensor) -> list[float]:
    pred, truth = logits > 0, target > 0.5
    dims = tuple(range(1, pred.dim()))
    return ((pred & truth).sum(dims) / (pred | truth).sum(dims).clamp(min=1)).tolist()


def train(probe: Probe, refiner: Refiner, args: argparse.Namespace) -> None:
    optimizer = torch.optim.AdamW(refiner.parameters(), lr=args.lr, weight_decay=0.01)
    config = TrainConfig(seed=11)
    generator = torch.Generator().manual_seed(0)
    began = time.perf_counter()
    for step in range(args.steps):
        warm = min(1.0, (step + 1) / 20)
        for group in optimizer.param_groups:
            group["lr"] = args.lr * warm * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        optimizer.zero_grad()
        base_iou: list[float] = []
        refined_iou: list[float] = []
        scenes = [s for s in step_scenes(step, config, probe.model) if len(s.masks)]
        for scene in scenes:
            index = torch.randint(len(scene.masks), (8,), generator=generator)
            boxes = scene.boxes[index].clone()
            sides = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
            noisy = torch.rand(8, 1, generator=generator) < 0.5
            noise = (torch.randn(8, 4, generator=generator) * 0.1 * sides).clamp(-10, 10)
            boxes += noise * noisy
            pixels, logits = probe.base(scene.image, boxes)
            target = scene.masks[index][:, None].float()
            out = refiner(pixels, logits, probe.box_map(boxes))
            prob = out.sigmoid()
            dice = 1 - (2 * (prob * target).sum((1, 2, 3)) + 1) / (
                prob.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1
            )
            bce = F.binary_cross_entropy_with_logits(out, target)
            ((10 * bce + dice.mean()) / len(scenes)).backward()
            base_iou += mean_iou(logits, target)
            refined_iou += mean_iou(out.detach(), target)
        torch.nn.utils.clip_grad_norm_(refiner.parameters(), 1.0)
        optimizer.step()
        if (step + 1) % 10 == 0:
            row = {"step": step + 1, "base_iou": float(np.mean(base_iou)),
                   "refined_iou": float(np.mean(refined_iou)),
                   "elapsed_s": round(time.perf_counter() - began)}  # fmt: skip
            print(json.dumps(row), flush=True)


@torch.no_grad()
def evaluate(probe: Probe, refiner: Refiner, scenes: int) -> dict[str, dict[str, float]]:
    """Tight-box mIoU at full resolution, base and refined, by size."""
    scores: dict[str, list[float]] = {"base": [], "refined": []}
    areas: list[int] = []
    for scene in SceneDataset(scenes, EVAL_BASE_SEED):
        if not len(scene.masks):
            continue
        model = probe.model
        t = scene_to_tensors(scene.image, scene.masks, scene.boxes, model.image_size, probe.low_res)
        pixels, logits = probe.base(t.image, t.boxes)
        refined = refiner(pixels, logits, probe.box_map(t.boxes))
        truth = torch.from_numpy(scene.masks)
        for name, low in (("base", logits), ("refined", refined)):
            full = model.postprocess_masks(low, t.input_size, scene.image.shape[:2])[:, 0]
            scores[name] += mean_iou(full, truth)
        areas += scene.masks.sum((1, 2)).tolist()
    area = np.array(areas)
    groups = {"all": area >= 0} | {n: (area >= lo) & (area < hi) for n, lo, hi in SIZE_BINS}
    return {
        group: {"objects": int(keep.sum())}
        | {name: float(np.array(values)[keep].mean()) for name, values in scores.items()}
        for group, keep in groups.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="segany_shapes")
    parser.add_argument(
        "--inputs", nargs="*", choices=("image", "affinity"), default=["image", "affinity"]
    )
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--eval-scenes", type=int, default=50)
    args = parser.parse_args()
    torch.manual_seed(0)
    probe = Probe(segany.load_model(args.model, mode="exact").eval())
    refiner = Refiner(probe.stride, set(args.inputs))
    train(probe, refiner, args)
    print(json.dumps(evaluate(probe, refiner.eval(), args.eval_scenes), indent=1))


if __name__ == "__main__":
    main()
