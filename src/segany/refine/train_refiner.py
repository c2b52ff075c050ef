"""Training a :class:`~segany.refine.refiner.MaskRefiner` on a frozen model's masks.

Each step draws fresh generated scenes (as :func:`segany.train.loop.step_scenes` does),
runs the frozen model on simulated prompts as the evaluation does — boxes (tight or
noisy), and click sessions (a random click, the best of its 3 masks, then corrective
clicks with the previous refined logits as mask input) — and trains the refiner on every
refined mask: BCE x ``bce_weight`` + dice, after each of its iterations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..engine.modes import decode_prompts, encode
from ..errors import InputError
from ..models.sam import Sam
from ..train.config import TrainConfig, require_at_least
from ..train.loop import step_scenes
from ..train.losses import dice_loss, mask_iou
from ..train.prompting import corrective_points, noisy_boxes, random_points
from ..train.step import choose_objects
from ..train.targets import SceneTensors
from .refiner import MaskRefiner

Refined = tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]  # outputs, decoder, targets


@dataclass(frozen=True)
class RefinerTrainConfig:
    """Options of :func:`train_refiner` (fresh scenes every step; ``seed`` picks them)."""

    steps: int = 200
    images_per_step: int = 8
    boxes_per_image: int = 3
    sessions_per_image: int = 2
    clicks: int = 2  # corrective clicks after the first, per session
    box_noise_fraction: float = 0.5
    box_noise: float = 0.1
    box_max_shift: float = 10.0
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    bce_weight: float = 10.0
    seed: int = 11

    def __post_init__(self) -> None:
        require_at_least(self, 1, ("steps", "images_per_step"))
        require_at_least(self, 0, ("boxes_per_image", "sessions_per_image", "clicks"))
        if self.boxes_per_image + self.sessions_per_image == 0:
            raise InputError("boxes_per_image and sessions_per_image are both 0: nothing to train")
        if self.lr <= 0:
            raise InputError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.seed < 256:
            raise InputError(f"seed must be within [0, 256), got {self.seed}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _loss(outputs: list[torch.Tensor], target: torch.Tensor, bce_weight: float) -> torch.Tensor:
    """Mean over iterations of BCE x weight + dice; outputs: Bx1xLxL each, target Bx1xLxL."""
    total = outputs[0].new_zeros(())
    for out in outputs:
        bce = F.binary_cross_entropy_with_logits(out, target)
        total = total + bce_weight * bce + dice_loss(out, target).mean()
    return total / len(outputs)


class _Scene:
    """One scene's frozen-model state: features, pixel grid, targets."""

    def __init__(self, model: Sam, refiner: MaskRefiner, scene: SceneTensors) -> None:
        x = model.preprocess(scene.image[None].float())
        with torch.no_grad():
            self.features = encode(model, x)
        self.pixels = refiner.pixel_grid(x)
        self.model, self.refiner, self.scene = model, refiner, scene

    def decode(
        self,
        coords: torch.Tensor | None,
        labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
        mask_input: torch.Tensor | None,
        multimask: bool,
    ) -> torch.Tensor:
        """The frozen model's low-res logits (BxMxLxL) for these prompts."""
        with torch.no_grad():
            logits, _ = decode_prompts(
                self.model, self.features, coords, labels, boxes, mask_input, multimask
            )
        return logits

    def boxes(
        self, index: torch.Tensor, config: RefinerTrainConfig, generator: torch.Generator
    ) -> Refined:
        """Refined box prompts: (outputs per iteration, decoder logits, targets)."""
        boxes = self.scene.boxes[index].float()
        noisy = noisy_boxes(
            boxes, config.box_noise, config.box_max_shift, self.model.image_size, generator
        )
        pick = torch.rand(len(index), generator=generator) < config.box_noise_fraction
        boxes = torch.where(pick[:, None], noisy, boxes)
        base = self.decode(None, None, boxes, None, False)
        outputs = self.refiner(
            self.pixels, base, boxes=boxes, all_iterations=True, crop_margin=None
        )
        return outputs, base, self.scene.masks[index][:, None].float()

    def sessions(
        self, index: torch.Tensor, clicks: int, generator: torch.Generator
    ) -> list[Refined]:
        """Refined click sessions: one (outputs, decoder logits, targets) per click."""
        targets = self.scene.masks[index]
        target = targets[:, None].float()
        scale = self.scene.scale
        coords = random_points(targets, scale, generator)[:, None]
        labels = torch.ones(len(index), 1, dtype=torch.long)
        base = self.decode(coords, labels, None, None, True)
        best = mask_iou(base, target.expand_as(base)).argmax(1)
        base = base[torch.arange(len(index)), best][:, None]
        results: list[Refined] = []
        for k in range(clicks + 1):
            if k:
                previous = results[-1][0][-1].detach()
                new, new_labels = corrective_points(previous[:, 0] > 0, targets, scale, generator)
                coords = torch.cat([coords, new[:, None]], 1)
                labels = torch.cat([labels, new_labels[:, None]], 1)
                base = self.decode(coords, labels, None, previous, False)
            outputs = self.refiner(
                self.pixels, base, coords, labels, all_iterations=True, crop_margin=None
            )
            results.append((outputs, base, target))
        return results


def train_refiner(
    model: Sam,
    config: RefinerTrainConfig = RefinerTrainConfig(),
    refiner: MaskRefiner | None = None,
    progress: bool = True,
    log: Callable[[dict[str, float]], object] | None = None,
) -> MaskRefiner:
    """Train ``refiner`` (a new one by default) on ``model``'s frozen masks; eval mode out.

    ``log`` receives per step: the loss and the mean IoU (at the low-res grid) of the
    decoder's and of the refined masks, for boxes and for clicks (fresh scenes every
    step, so these are held-out estimates).
    """
    model = model.eval()
    model.requires_grad_(False)
    low_res = model.prompt_encoder.mask_input_size[0]
    if refiner is None:
        torch.manual_seed(config.seed)  # the new refiner's initial weights
        refiner = MaskRefiner()
    if model.image_size // low_res != refiner.config.stride:
        raise InputError(
            f"the refiner's stride is {refiner.config.stride}, the model's grid needs "
            f"{model.image_size // low_res}"
        )
    refiner.train()
    optimizer = torch.optim.AdamW(
        refiner.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    scene_config = TrainConfig(images_per_step=config.images_per_step, seed=config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    bar = tqdm(total=config.steps, unit="step", disable=not progress)
    for step in range(config.steps):
        warm = min(1.0, (step + 1) / config.warmup_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * step / config.steps))
        for group in optimizer.param_groups:
            group["lr"] = config.lr * warm * cosine
        optimizer.zero_grad()
        scenes = [s for s in step_scenes(step, scene_config, model) if len(s.masks)]
        metrics: dict[str, list[float]] = {
            k: [] for k in ("box", "box_base", "click", "click_base")
        }
        total = 0.0
        for tensors in scenes:
            scene = _Scene(model, refiner, tensors)
            results: list[tuple[str, Refined]] = []
            if config.boxes_per_image:
                index = choose_objects(tensors, config.boxes_per_image, 0.0, generator)
                results.append(("box", scene.boxes(index, config, generator)))
            if config.sessions_per_image:
                index = choose_objects(tensors, config.sessions_per_image, 0.0, generator)
                results += [("click", r) for r in scene.sessions(index, config.clicks, generator)]
            losses = [_loss(out, target, config.bce_weight) for _, (out, _, target) in results]
            loss = torch.stack(losses).sum() / (len(results) * len(scenes))
            loss.backward()
            total += float(loss.detach())
            for kind, (out, base, target) in results:
                metrics[kind] += mask_iou(out[-1].detach(), target).flatten().tolist()
                metrics[kind + "_base"] += mask_iou(base, target).flatten().tolist()
        torch.nn.utils.clip_grad_norm_(refiner.parameters(), 1.0)
        optimizer.step()
        row = {"step": step + 1, "loss": total} | {
            k: sum(v) / len(v) for k, v in metrics.items() if v
        }
        bar.update(1)
        bar.set_postfix(loss=f"{total:.3f}", box=f"{row.get('box', 0):.3f}")
        if log is not None:
            log(row)
    bar.close()
    return refiner.eval()
