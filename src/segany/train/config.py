"""Settings of a promptable-training run (saved beside its checkpoints)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import InputError


@dataclass(frozen=True)
class TrainConfig:
    """SAM-style promptable training on generated scenes.

    Prompts per image are simulated from ground truth: a random point (or the object's
    most interior point) or a noisy box, then ``clicks`` corrective points sampled from
    the error region, each iteration feeding the previous low-res logits back as mask
    input. Loss: focal:dice 20:1 on the best of 3 masks for single points, plus MSE on
    the IoU head. For the first ``bce_warmup_steps`` plain BCE replaces the focal term and
    only objects of at least ``warmup_min_area`` low-res pixels are prompted: from the
    start on all objects, small models collapse to empty masks (docs/training.md).
    Corrective clicks start at ``clicks_from_step``, once single prompts work.
    """

    model: str = "segany_shapes"
    steps: int = 6000
    images_per_step: int = 4
    prompts_per_image: int = 16
    clicks: int = 2
    clicks_from_step: int = 600
    box_fraction: float = 0.5
    centre_fraction: float = 0.2
    box_noise: float = 0.1
    box_max_shift: float = 10.0
    small_object_power: float = 0.3
    lr: float = 8e-4
    weight_decay: float = 0.1
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    bce_warmup_steps: int = 1200
    warmup_min_area: int = 64
    focal_weight: float = 20.0
    dice_weight: float = 1.0
    iou_weight: float = 1.0
    bf16: bool = True
    seed: int = 0
    checkpoint_every: int = 200
    log_every: int = 20

    def __post_init__(self) -> None:
        positive = ("steps", "images_per_step", "prompts_per_image", "checkpoint_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.clicks < 0:
            raise InputError(f"clicks must be >= 0, got {self.clicks}")
        for name in ("box_fraction", "centre_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"{name} must be within [0, 1], got {getattr(self, name)}")
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
