"""Settings of a promptable-training run (saved beside its checkpoints)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import InputError


def require_at_least(config: object, minimum: int, names: tuple[str, ...]) -> None:
    """``InputError`` naming the first of ``config``'s fields ``names`` below ``minimum``."""
    for name in names:
        if getattr(config, name) < minimum:
            raise InputError(f"{name} must be at least {minimum}, got {getattr(config, name)}")


TRAINABLE = ("all", "decoder", "iou_head")


@dataclass(frozen=True)
class TrainConfig:
    """SAM-style promptable training on generated scenes.

    Prompts per image are simulated from ground truth: a random point (or the object's
    most interior point) or a noisy box, then ``clicks`` corrective points sampled from
    the error region, each iteration feeding the previous low-res logits back as mask
    input. Loss: focal:dice 20:1 on the best of 3 masks for single points, plus MSE on
    the IoU head.

    Two warm-ups keep small models from collapsing to empty masks (docs/training.md):
    for the first ``easy_steps`` only objects of at least ``warmup_min_area`` low-res
    pixels are prompted (a bound that then falls geometrically to 1 pixel over as many
    steps again), and the per-pixel term starts as plain BCE, blended linearly
    into SAM's focal term between ``focal_from_step`` and ``focal_from_step +
    focal_ramp_steps``. Corrective clicks start at ``clicks_from_step``.

    ``grouping_weight`` > 0 adds the dense grouping loss on the encoder
    (:mod:`segany.train.grouping`); ``prompt_head_weight`` > 0 trains object-aware
    SegEvery's box head (:mod:`segany.models.prompt_head`) on the same embeddings, with
    the encoder (saved as ``prompt_head.safetensors`` beside the model).

    ``iou_rank_weight`` > 0 adds a ranking term for the IoU head: which of the 3 masks of
    a single click scores highest should be the best one (:func:`.losses.segmentation_loss`).

    ``trainable`` picks what learns: ``"all"``, ``"decoder"`` (the image encoder frozen: it
    runs without a graph, a cheaper step) or ``"iou_head"`` (only the decoder's IoU head,
    to recalibrate which of the 3 masks is picked).

    ``zoom_crops``: the share of training scenes replaced by a square crop around one of
    their instances (:func:`.crops.zoom_crop`), the magnified view the model answers on
    when a click is also answered on crops (:mod:`segany.refine.zoom`).

    A fresh model first gets aligned decoder attention (``attention_gain``, 0 for none)
    and ``decoder_warmup_steps`` of the geometric decoder warm-up
    (:mod:`segany.train.localise`).

    ``bf16``: autocast the forward pass to bf16 where the CPU computes it natively
    (AVX-512 BF16 or AMX, :func:`segany.engine.hardware.native_bf16`); elsewhere the run
    stays in fp32, which is faster there than emulated bf16.

    Learning rate: linear warm-up over ``warmup_steps``, constant, then a cosine decay to
    ``min_lr_ratio`` over the last ``decay_fraction`` of ``steps`` (warm-up, stable,
    decay: a run can be lengthened on resume before its decay begins).
    """

    model: str = "segany_shapes"
    steps: int = 8000
    attention_gain: float = 2.0
    decoder_warmup_steps: int = 300
    images_per_step: int = 8
    prompts_per_image: int = 8
    clicks: int = 2
    clicks_from_step: int = 300
    box_fraction: float = 0.5
    centre_fraction: float = 0.2
    box_noise: float = 0.1
    box_max_shift: float = 10.0
    small_object_power: float = 0.0
    zoom_crops: float = 0.0
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 200
    decay_fraction: float = 0.25
    min_lr_ratio: float = 0.02
    grad_clip: float = 1.0
    easy_steps: int = 400
    warmup_min_area: int = 256
    focal_from_step: int = 800
    focal_ramp_steps: int = 800
    focal_weight: float = 20.0
    dice_weight: float = 1.0
    iou_weight: float = 1.0
    iou_rank_weight: float = 0.0
    grouping_weight: float = 0.0
    prompt_head_weight: float = 0.0
    trainable: str = "all"
    bf16: bool = True
    seed: int = 0
    checkpoint_every: int = 200
    log_every: int = 20

    def __post_init__(self) -> None:
        positive = ("steps", "images_per_step", "prompts_per_image", "checkpoint_every")
        require_at_least(self, 1, positive)
        require_at_least(self, 0, ("clicks",))
        for name in ("box_fraction", "centre_fraction", "decay_fraction", "zoom_crops"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"{name} must be within [0, 1], got {getattr(self, name)}")
        if self.trainable not in TRAINABLE:
            choices = ", ".join(TRAINABLE)
            raise InputError(f"trainable must be one of {choices}, got {self.trainable!r}")
        if not 0 <= self.seed < 256:
            raise InputError(f"seed must be within [0, 256), got {self.seed}")
        if self.lr <= 0:
            raise InputError(f"lr must be positive, got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**data)

    def min_object_area(self, step: int) -> int:
        """Smallest object (in low-res pixels) prompted at ``step`` (the size curriculum)."""
        if step < self.easy_steps:
            return self.warmup_min_area
        if self.easy_steps <= 0 or self.warmup_min_area <= 1:
            return 1
        progress = (step - self.easy_steps) / self.easy_steps
        return max(1, round(self.warmup_min_area ** (1 - min(1.0, progress))))

    def focal_share(self, step: int) -> float:
        """Weight of the focal term at ``step`` (1 - the weight of plain BCE)."""
        if step < self.focal_from_step:
            return 0.0
        if self.focal_ramp_steps <= 0:
            return 1.0
        return min(1.0, (step - self.focal_from_step) / self.focal_ramp_steps)
