"""Re-ranking a click's three candidate masks after graph-cut snapping.

The decoder's IoU head scores the masks it drew; graph-cut snapping
(:mod:`segany.models.graph_cut`) then changes them, and by how much depends on the mask:
a whole object snaps cleanly to its colour edges, a blob that covers half of two parts
does not. The ranker predicts the IoU of each *snapped* mask from what the pipeline
already has — the decoder's scores, each mask's area before and after the cut, how much
the cut moved it, and how much the three snapped masks overlap — so the mask a click
answers with is the one most likely to be the object. A small MLP (18 → 64 → 64 → 3,
5.6 k parameters) trained on generated scenes (:mod:`segany.train.ranker`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.masks import binary_iou

CANDIDATES = 3  # SAM's ambiguity-aware masks
NUM_FEATURES = 6 * CANDIDATES


@dataclass(frozen=True)
class RankerConfig:
    """Width of the ranker's two hidden layers."""

    hidden: int = 64

    def __post_init__(self) -> None:
        if self.hidden < 1:
            raise ValueError(f"hidden must be at least 1, got {self.hidden}")


def ranking_features(scores: np.ndarray, raw: np.ndarray, snapped: np.ndarray) -> np.ndarray:
    """The ranker's 18 inputs for one prompt's candidates.

    Arguments:
      scores: 3 predicted IoUs of the decoder. raw: 3xHxW bool masks before the cut;
        snapped: 3xHxW bool masks after it.

    Returns:
      (18,) float32: scores; IoU(raw, snapped) per mask; log area of the snapped and of the
      raw mask as fractions of the image; log of their ratio; pairwise IoU of the snapped
      masks (0-1, 0-2, 1-2).
    """
    if raw.shape != snapped.shape or raw.shape[0] != CANDIDATES or len(scores) != CANDIDATES:
        raise ValueError(
            f"expected 3 scores and two 3xHxW mask stacks; got {len(scores)}, "
            f"{raw.shape}, {snapped.shape}"
        )
    pixels = raw[0].size
    snap_area = snapped.reshape(CANDIDATES, -1).sum(1).astype(np.float64)
    raw_area = raw.reshape(CANDIDATES, -1).sum(1).astype(np.float64)
    agree = [binary_iou(a, b) for a, b in zip(raw, snapped, strict=True)]
    pairs = [binary_iou(snapped[i], snapped[j]) for i, j in itertools.combinations(range(3), 2)]
    parts = [
        np.asarray(scores, dtype=np.float64),
        np.asarray(agree),
        np.log(snap_area / pixels + 1e-6),
        np.log(raw_area / pixels + 1e-6),
        np.log((snap_area + 1) / (raw_area + 1)),
        np.asarray(pairs),
    ]
    return np.concatenate(parts).astype(np.float32)


class MaskRanker(nn.Module):
    """Predicted IoU of snapped masks: BxF features (:func:`ranking_features`) -> Bx3.

    ``mean`` and ``std`` standardise the features (set by training, saved with it).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, config: RankerConfig | None = None) -> None:
        super().__init__()
        self.config = config or RankerConfig()
        width = self.config.hidden
        self.register_buffer("mean", torch.zeros(NUM_FEATURES))
        self.register_buffer("std", torch.ones(NUM_FEATURES))
        self.mlp = nn.Sequential(
            nn.Linear(NUM_FEATURES, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, CANDIDATES),
        )

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor]) -> MaskRanker:
        """A ranker from :meth:`export`'s tensors (its width read from them)."""
        weight = state_dict.get("mlp.0.weight")
        if weight is None or weight.ndim != 2:
            raise ValueError("no mlp.0.weight: not a mask ranker")
        ranker = cls(RankerConfig(hidden=int(weight.shape[0])))
        ranker.load_state_dict(state_dict)
        return ranker.eval()

    def export(self) -> dict[str, torch.Tensor]:
        """The tensors to save (safetensors-ready)."""
        return {k: v.detach().contiguous() for k, v in self.state_dict().items()}

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """BxF raw features -> Bx3 logits of the snapped masks' IoU."""
        return self.mlp((features - self.mean) / self.std)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """BxF raw features -> Bx3 predicted IoU in [0, 1]."""
        return torch.sigmoid(self.logits(features))

    @torch.inference_mode()
    def rank(self, scores: np.ndarray, raw: np.ndarray, snapped: np.ndarray) -> np.ndarray:
        """The 3 predicted IoUs of ``snapped`` (arguments as :func:`ranking_features`)."""
        features = torch.from_numpy(ranking_features(scores, raw, snapped))[None]
        return self(features.to(self.mean.dtype))[0].float().numpy()
