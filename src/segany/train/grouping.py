"""An auxiliary loss that teaches the image encoder to group pixels by region, densely.

SAM's loss reaches the encoder only through the few prompted masks of each image. This
loss supervises every image token at once: a linear probe on the image embedding is
trained so that tokens of the same region (the finest instance covering them: a sub-part,
a part or a whole object, or the background) lie close together and different regions
apart (the discriminative loss of De Brabandere et al., 2017). The probe is not part of
the model: only the encoder keeps what it learned, so the architecture is unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GroupingProbe", "grouping_loss"]


class GroupingProbe(nn.Module):
    """A 1x1 projection of the image embedding: BxCxHxW -> BxDxHxW."""

    def __init__(self, channels: int, dim: int = 16) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, kernel_size=1)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.proj(embedding)


def grouping_loss(
    features: torch.Tensor, regions: torch.Tensor, pull: float = 0.5, push: float = 1.5
) -> torch.Tensor:
    """Discriminative loss of token features against their regions.

    Arguments:
      features: BxDxHxW probe outputs. regions: BxHxW int64 region index per token (any
        values; equal values form a region).
      pull: a token further than this from its region's mean is pulled in.
      push: two region means closer than twice this are pushed apart.

    Returns:
      (torch.Tensor): the mean over images of (pull term + push term + 0.001 x mean norm).
    """
    losses = []
    for feats, labels in zip(features, regions, strict=True):
        flat = feats.flatten(1).T  # (H*W) x D
        ids, index = torch.unique(labels.flatten(), return_inverse=True)
        count = len(ids)
        sums = torch.zeros((count, flat.shape[1]), dtype=flat.dtype).index_add_(0, index, flat)
        sizes = torch.bincount(index, minlength=count).clamp(min=1)
        means = sums / sizes[:, None]
        distance = (flat - means[index]).norm(dim=1)
        variance = torch.zeros(count, dtype=flat.dtype).index_add_(
            0, index, F.relu(distance - pull) ** 2
        )
        term = (variance / sizes).mean()
        if count > 1:
            gaps = torch.cdist(means, means)
            off = ~torch.eye(count, dtype=torch.bool)
            term = term + (F.relu(2 * push - gaps[off]) ** 2).mean()
        losses.append(term + 0.001 * means.norm(dim=1).mean())
    return torch.stack(losses).mean()
