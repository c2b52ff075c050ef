"""SAM's mask decoder: prompt tokens + image embedding -> mask logits and IoU scores."""

from __future__ import annotations

import torch
from torch import nn

from .common import MLP, LayerNorm2d
from .transformer import TwoWayTransformer


def output_slice(multimask_output: bool) -> slice:
    """Which of the decoder's 1+M mask tokens are returned: the M ambiguity-aware masks
    for ``multimask_output``, else the single-mask token 0."""
    return slice(1, None) if multimask_output else slice(0, 1)


class MaskDecoder(nn.Module):
    """Predicts masks from an image embedding and prompt embeddings.

    Arguments:
      transformer_dim (int): channel width C of the image embedding and tokens.
      transformer (TwoWayTransformer): the two-way transformer.
      num_multimask_outputs (int): masks predicted for ambiguous prompts (3 in SAM).
      activation (type): activation of the upscaling path.
      iou_head_depth (int): layers of the IoU-prediction MLP.
      iou_head_hidden_dim (int): hidden width of the IoU-prediction MLP.
    """

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: TwoWayTransformer,
        num_multimask_outputs: int = 3,
        activation: type[nn.Module] = nn.GELU,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        super().__init__()
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            activation(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            activation(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3)
            for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth
        )

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict masks for a batch of prompts on one image.

        Arguments:
          image_embeddings (torch.Tensor): 1xCxHxW embedding shared by the B prompts
            (or BxCxHxW, one per prompt).
          image_pe (torch.Tensor): 1xCxHxW positional encoding.
          sparse_prompt_embeddings (torch.Tensor): BxNxC point and box tokens.
          dense_prompt_embeddings (torch.Tensor): BxCxHxW mask embeddings.
          multimask_output (bool): return the 3 ambiguity-aware masks instead of one.

        Returns:
          masks (torch.Tensor): BxMx(4H)x(4W) logits, M = 3 or 1.
          iou_pred (torch.Tensor): BxM predicted IoU.
        """
        masks, iou_pred = self.predict_masks(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings
        )
        chosen = output_slice(multimask_output)
        return masks[:, chosen], iou_pred[:, chosen]

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All mask tokens' outputs: Bx(1+M)x(4H)x(4W) logits and Bx(1+M) IoU."""
        batch = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat(
            [output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse_prompt_embeddings], dim=1
        )
        src = image_embeddings + dense_prompt_embeddings
        _, channels, height, width = src.shape
        hs, keys = self.transformer(src, image_pe, tokens)
        return self.heads(hs, keys, height, width)

    def heads(
        self, hs: torch.Tensor, keys: torch.Tensor, height: int, width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The transformer's outputs -> Bx(1+M)x(4H)x(4W) logits and Bx(1+M) IoU.

        Arguments:
          hs: BxNxC output tokens (IoU token, then the mask tokens, then the prompts).
          keys: Bx(H*W)xC image tokens.
        """
        return self.mask_logits(hs, keys, height, width), self.predict_iou(hs)

    def predict_iou(self, hs: torch.Tensor) -> torch.Tensor:
        """BxNxC output tokens -> Bx(1+M) predicted IoU (it needs no mask)."""
        return self.iou_prediction_head(hs[:, 0, :])

    def mask_logits(
        self, hs: torch.Tensor, keys: torch.Tensor, height: int, width: int
    ) -> torch.Tensor:
        """BxNxC output tokens and Bx(H*W)xC image tokens -> Bx(1+M)x(4H)x(4W) logits."""
        batch, _, channels = hs.shape
        mask_tokens_out = hs[:, 1 : 1 + self.num_mask_tokens, :]
        src = keys.transpose(1, 2).reshape(batch, channels, height, width)
        upscaled = self.output_upscaling(src)
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
            dim=1,
        )
        _, up_channels, up_h, up_w = upscaled.shape
        return (hyper_in @ upscaled.reshape(batch, up_channels, up_h * up_w)).reshape(
            batch, self.num_mask_tokens, up_h, up_w
        )
