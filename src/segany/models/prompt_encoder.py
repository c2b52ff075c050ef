"""SAM's prompt encoder: points, boxes and masks to sparse and dense embeddings."""

from __future__ import annotations

import math

import torch
from torch import nn

from .common import LayerNorm2d

# Point labels understood by the prompt encoder.
LABEL_PAD = -1
LABEL_NEGATIVE = 0
LABEL_POSITIVE = 1


class PositionEmbeddingRandom(nn.Module):
    """Positional encoding with random spatial frequencies (Fourier features).

    ``positional_encoding_gaussian_matrix`` (2xF) is a persistent buffer, as in the
    official checkpoints; the output has 2F channels (sin and cos).
    """

    def __init__(self, num_pos_feats: int = 64, scale: float = 1.0) -> None:
        super().__init__()
        self.positional_encoding_gaussian_matrix: torch.Tensor
        self.register_buffer(
            "positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats))
        )

    def _encode(self, coords: torch.Tensor) -> torch.Tensor:
        """...x2 coordinates normalised to [0, 1] -> ...x2F features."""
        # Always fp32: under bf16 autocast the product would lose the positions' precision.
        with torch.autocast(coords.device.type, enabled=False):
            coords = 2 * coords.float() - 1
            coords = coords @ self.positional_encoding_gaussian_matrix.float()
            coords = 2 * math.pi * coords
            return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """Encoding of every cell centre of an HxW grid: returns 2FxHxW."""
        height, width = size
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
        xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
        grid = torch.stack(
            [xs[None, :].expand(height, width), ys[:, None].expand(height, width)], dim=-1
        )
        return self._encode(grid).permute(2, 0, 1)

    def forward_with_coords(
        self, coords: torch.Tensor, image_size: tuple[int, int]
    ) -> torch.Tensor:
        """BxNx2 pixel coordinates (x, y) in an image of ``image_size`` (H, W) -> BxNx2F."""
        normalised = torch.stack(
            [coords[..., 0] / image_size[1], coords[..., 1] / image_size[0]], dim=-1
        )
        return self._encode(normalised.float())


class PromptEncoder(nn.Module):
    """Encodes prompts for SAM's mask decoder.

    Arguments:
      embed_dim (int): prompt embedding size (256 in the published models).
      image_embedding_size (tuple): (H, W) of the image embedding.
      input_image_size (tuple): (H, W) of the padded encoder input.
      mask_in_chans (int): hidden channels of the mask-downscaling stem.
    """

    num_point_embeddings = 4  # positive, negative, box top-left, box bottom-right

    def __init__(
        self,
        embed_dim: int,
        image_embedding_size: tuple[int, int],
        input_image_size: tuple[int, int],
        mask_in_chans: int,
        activation: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = input_image_size
        self.image_embedding_size = image_embedding_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.point_embeddings = nn.ModuleList(
            nn.Embedding(1, embed_dim) for _ in range(self.num_point_embeddings)
        )
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            activation(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            activation(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def point_embed(self, index: int) -> torch.Tensor:
        """1xC learned embedding of point kind ``index`` (neg, pos, box corner 1, 2)."""
        embedding = self.point_embeddings[index]
        assert isinstance(embedding, nn.Embedding)
        return embedding.weight

    def get_dense_pe(self) -> torch.Tensor:
        """Positional encoding of the image embedding grid: 1xCxHxW."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def _embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """BxNx2 points and BxN labels -> Bx(N+pad)xC embeddings."""
        points = points + 0.5  # pixel centres
        if pad:
            batch = points.shape[0]
            points = torch.cat([points, points.new_zeros(batch, 1, 2)], dim=1)
            labels = torch.cat([labels, -labels.new_ones(batch, 1)], dim=1)
        embedding = self.pe_layer.forward_with_coords(points, self.input_image_size)
        labels = labels[..., None]
        embedding = torch.where(labels == LABEL_PAD, torch.zeros_like(embedding), embedding)
        embedding = embedding + (labels == LABEL_PAD) * self.not_a_point_embed.weight
        embedding = embedding + (labels == LABEL_NEGATIVE) * self.point_embed(0)
        embedding = embedding + (labels == LABEL_POSITIVE) * self.point_embed(1)
        return embedding

    def _embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """Bx4 XYXY boxes -> Bx2xC corner embeddings."""
        corners = (boxes + 0.5).reshape(-1, 2, 2)
        embedding = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        corner_embed = torch.cat([self.point_embed(2), self.point_embed(3)], dim=0)
        return embedding + corner_embed

    def _embed_masks(self, masks: torch.Tensor) -> torch.Tensor:
        """Bx1x(4H)x(4W) mask logits -> BxCxHxW."""
        return self.mask_downscaling(masks)

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed prompts; all coordinates are in the padded input frame.

        Arguments:
          points: (BxNx2 coordinates, BxN labels) or None.
          boxes: Bx4 XYXY or None.
          masks: Bx1x(4H)x(4W) low-resolution logits or None.

        Returns:
          sparse (torch.Tensor): BxKxC, K = points (+1 padding point without a box)
            + 2 per box.
          dense (torch.Tensor): BxCxHxW.
        """
        batch = self._batch_size(points, boxes, masks)
        device = self.no_mask_embed.weight.device
        sparse = torch.empty((batch, 0, self.embed_dim), device=device)
        if points is not None:
            coords, labels = points
            sparse = torch.cat([sparse, self._embed_points(coords, labels, boxes is None)], 1)
        if boxes is not None:
            sparse = torch.cat([sparse, self._embed_boxes(boxes)], dim=1)
        if masks is not None:
            dense = self._embed_masks(masks)
        else:
            height, width = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, height, width)
        return sparse, dense

    @staticmethod
    def _batch_size(
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> int:
        if points is not None:
            return int(points[0].shape[0])
        if boxes is not None:
            return int(boxes.shape[0])
        if masks is not None:
            return int(masks.shape[0])
        return 1
