"""The prompt encoder and mask decoder rewritten for export: the same function, less work.

:class:`OnnxDecoder` computes what ``Sam.prompt_encoder`` + ``Sam.mask_decoder.predict_masks``
compute, in SAM's point format (see :mod:`segany.engine.onnx_export`), but arranged for a
runtime without PyTorch's kernels (onnxruntime-web's WASM backend runs it in a browser):

* **Cross attention with few tokens.** A prompt has T = 5 + N tokens against H*W = 4096
  image tokens. Instead of projecting all image tokens (HW x C x C/2 multiply-adds for each
  of k, v, q and the output), the small side's projection is folded into the tokens:
  ``(q Wq)(x Wk)ᵀ = (q Wq Wkᵀ) xᵀ`` and ``softmax(·)(x Wv) = (softmax(·) x) Wv``, which costs
  heads*T*C*HW. That is less while heads*T < C/2 (T < 16 points for SAM), i.e. for every
  interactive prompt. The key bias only shifts each query's logits by a constant, which
  softmax ignores; softmax rows sum to 1, so the value bias passes through unchanged.
* **Upscaling as matrix products.** A 2x2 stride-2 transposed convolution is, per input
  pixel, a linear map to 4 output pixels: the two are done channels-last as MatMul with
  LayerNorm over the last axis, and the 4x4 pixel shuffle is applied once, to the M mask
  logits rather than to the 32 upscaled channels.
* The positional encoding of the grid and the point-embedding table are constants.

Results equal the PyTorch model's to float rounding (tests/engine/test_onnx.py).
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..models.common import LayerNorm2d
from ..models.sam import Sam
from ..models.transformer import Attention, TwoWayAttentionBlock

__all__ = ["OnnxDecoder"]


class FewTokenAttention(nn.Module):
    """An :class:`Attention` whose queries or keys are a few tokens, exported cheaply.

    Arguments:
      attention: the trained layer (its weights are copied into folded form).
    """

    key_fold: torch.Tensor
    value_fold: torch.Tensor
    query_fold: torch.Tensor
    query_bias: torch.Tensor
    out_fold: torch.Tensor

    def __init__(self, attention: Attention) -> None:
        super().__init__()
        heads = attention.num_heads
        inner, channels = attention.q_proj.weight.shape
        dim = inner // heads
        scale = 1.0 / math.sqrt(dim)
        self.heads, self.inner, self.channels = heads, inner, channels
        self.attention = attention
        wq = attention.q_proj.weight.detach().reshape(heads, dim, channels)
        wk = attention.k_proj.weight.detach().reshape(heads, dim, channels)
        wv = attention.v_proj.weight.detach().reshape(heads, dim, channels)
        wo = attention.out_proj.weight.detach().reshape(channels, heads, dim)
        # few queries: logits = (q Wq_h)(scale Wk_h) xᵀ; values (P x) Wv_hᵀ
        self.register_buffer("key_fold", wk * scale, persistent=False)  # h x d x C
        self.register_buffer("value_fold", wv.transpose(1, 2).contiguous(), persistent=False)
        # few keys: logits = x (scale Wq_hᵀ k_hᵀ) + scale bq_h k_hᵀ; out = P (v_h Wo_hᵀ)
        query_bias = attention.q_proj.bias.detach().reshape(heads, 1, dim) * scale
        self.register_buffer("query_fold", (wq * scale).transpose(1, 2).contiguous(), False)
        self.register_buffer("query_bias", query_bias, persistent=False)
        self.register_buffer("out_fold", wo.permute(1, 2, 0).contiguous(), persistent=False)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """BxTxI -> BxheadsxTxd."""
        batch, tokens, _ = x.shape
        return x.reshape(batch, tokens, self.heads, self.inner // self.heads).transpose(1, 2)

    def few_queries(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Tokens BxTxC attend to image tokens BxHWxC (k and v); returns BxTxC."""
        batch, tokens, _ = q.shape
        heads = self.heads
        query = self._heads(self.attention.q_proj(q)) @ self.key_fold  # B x h x T x C
        logits = k @ query.reshape(batch, heads * tokens, self.channels).transpose(1, 2)
        weights = logits.softmax(dim=1).transpose(1, 2)  # B x hT x HW
        mixed = (weights @ v).reshape(batch, heads, tokens, self.channels)
        out = mixed @ self.value_fold + self.attention.v_proj.bias.reshape(heads, 1, -1)
        return self.attention.out_proj(out.transpose(1, 2).reshape(batch, tokens, self.inner))

    def few_keys(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Image tokens BxHWxC attend to tokens BxTxC (k and v); returns BxHWxC."""
        batch, pixels, _ = q.shape
        tokens = k.shape[1]
        heads = self.heads
        keys_t = self._heads(self.attention.k_proj(k)).transpose(2, 3)  # B x h x d x T
        fold = (self.query_fold @ keys_t).permute(0, 2, 1, 3)  # B x C x h x T
        bias = (self.query_bias @ keys_t).reshape(batch, 1, heads * tokens)
        logits = q @ fold.reshape(batch, self.channels, heads * tokens) + bias
        weights = logits.reshape(batch, pixels, heads, tokens).softmax(dim=-1)
        values = self._heads(self.attention.v_proj(v)) @ self.out_fold  # B x h x T x C
        mixed = weights.reshape(batch, pixels, heads * tokens) @ values.reshape(
            batch, heads * tokens, self.channels
        )
        return mixed + self.attention.out_proj.bias


class ExportBlock(nn.Module):
    """A :class:`TwoWayAttentionBlock` with its cross attentions in few-token form."""

    def __init__(self, block: TwoWayAttentionBlock) -> None:
        super().__init__()
        self.block = block
        self.token_to_image = FewTokenAttention(block.cross_attn_token_to_image)
        self.image_to_token = FewTokenAttention(block.cross_attn_image_to_token)

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pe: torch.Tensor,
        key_pe: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """queries BxTxC, keys BxHWxC -> updated (queries, keys), as the block computes."""
        block = self.block
        queries = block.attend_tokens(queries, query_pe)
        k = keys + key_pe
        attended = self.token_to_image.few_queries(queries + query_pe, k, keys)
        queries = block.norm2(queries + attended)
        queries = block.norm3(queries + block.mlp(queries))
        attn_out = self.image_to_token.few_keys(k, queries + query_pe, queries)
        return queries, block.norm4(keys + attn_out)


class OnnxDecoder(nn.Module):
    """Prompt encoder + mask decoder in SAM's point format, for ONNX export (fp32).

    Arguments:
      model: the SAM whose prompt encoder and mask decoder are exported (shared, not copied).
    """

    key_pe: torch.Tensor
    point_kinds: torch.Tensor
    up1_weight: torch.Tensor
    up1_bias: torch.Tensor
    up2_weight: torch.Tensor
    up2_bias: torch.Tensor

    def __init__(self, model: Sam) -> None:
        super().__init__()
        encoder, decoder = model.prompt_encoder, model.mask_decoder
        self.prompt_encoder, self.mask_decoder = encoder, decoder
        self.input_size = model.image_size
        transformer = decoder.transformer
        self.blocks = nn.ModuleList(
            ExportBlock(cast(TwoWayAttentionBlock, block)) for block in transformer.layers
        )
        self.final = FewTokenAttention(transformer.final_attn_token_to_image)
        with torch.no_grad():
            dense_pe = encoder.get_dense_pe()  # 1 x C x H x W
            kinds = [encoder.not_a_point_embed.weight]
            kinds += [encoder.point_embed(i) for i in range(encoder.num_point_embeddings)]
        self.height, self.width = dense_pe.shape[-2:]
        key_pe = dense_pe.flatten(2).transpose(1, 2).contiguous()  # 1 x HW x C
        self.register_buffer("key_pe", key_pe, persistent=False)
        self.register_buffer("point_kinds", torch.cat(kinds).detach(), persistent=False)  # 5 x C
        up1, norm, self.act1, up2, self.act2 = decoder.output_upscaling
        assert isinstance(up1, nn.ConvTranspose2d) and isinstance(up2, nn.ConvTranspose2d)
        self.norm = cast(LayerNorm2d, norm)
        self.norm_width = int(up1.out_channels)
        for name, conv in (("up1", up1), ("up2", up2)):
            weight, bias = _pixel_linear(conv)
            self.register_buffer(name + "_weight", weight, persistent=False)
            self.register_buffer(name + "_bias", bias, persistent=False)

    def _embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """BxNx2 coordinates and BxN labels (-1 padding, 0..3) -> BxNxC point tokens."""
        matrix = self.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
        scaled = 2 * ((coords + 0.5) / self.input_size) - 1
        angles = 2 * math.pi * (scaled @ matrix)
        embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
        kinds = labels.unsqueeze(-1)
        embedding = torch.where(kinds == -1, torch.zeros_like(embedding), embedding)
        onehot = (kinds == torch.arange(-1, 4, dtype=labels.dtype)).to(embedding.dtype)  # BxNx5
        return embedding + onehot @ self.point_kinds

    def _upscale(self, keys: torch.Tensor, hyper: torch.Tensor) -> torch.Tensor:
        """Image tokens BxHWxC and hypernetwork outputs BxMxC' -> BxMx4Hx4W logits."""
        batch, pixels, _ = keys.shape
        x = (keys @ self.up1_weight + self.up1_bias).reshape(batch, pixels * 4, -1)
        x = F.layer_norm(x, (self.norm_width,), self.norm.weight, self.norm.bias, self.norm.eps)
        x = self.act1(x)
        x = self.act2((x @ self.up2_weight + self.up2_bias).reshape(batch, pixels * 16, -1))
        masks = x @ hyper.transpose(1, 2)  # B x (H W 2 2 2 2) x M, rows in that order
        count = hyper.shape[1]
        masks = masks.reshape(batch, self.height, self.width, 2, 2, 2, 2, count)
        masks = masks.permute(0, 7, 1, 3, 5, 2, 4, 6)  # row 4i+2a+c, column 4j+2b+d
        return masks.reshape(batch, count, 4 * self.height, 4 * self.width)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See :mod:`segany.engine.onnx_export` for shapes: Bx(1+M)x4Hx4W logits, Bx(1+M) IoU."""
        encoder, decoder = self.prompt_encoder, self.mask_decoder
        batch = point_coords.shape[0]
        sparse = self._embed_points(point_coords, point_labels)
        output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse], dim=1)
        with_mask = has_mask_input.reshape(-1, 1, 1)
        masked = encoder.mask_downscaling(mask_input).flatten(2).transpose(1, 2)
        dense = with_mask * masked + (1 - with_mask) * encoder.no_mask_embed.weight
        keys = image_embeddings.flatten(2).transpose(1, 2) + dense  # B x HW x C
        queries = tokens
        for block in self.blocks:
            queries, keys = block(queries, keys, tokens, self.key_pe)
        transformer = decoder.transformer
        attended = self.final.few_queries(queries + tokens, keys + self.key_pe, keys)
        hs = transformer.norm_final_attn(queries + attended)
        mask_tokens = hs[:, 1 : 1 + decoder.num_mask_tokens, :]
        hyper = torch.stack(
            [mlp(mask_tokens[:, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)],
            dim=1,
        )
        return self._upscale(keys, hyper), decoder.predict_iou(hs)


def _pixel_linear(conv: nn.ConvTranspose2d) -> tuple[torch.Tensor, torch.Tensor]:
    """A 2x2 stride-2 transposed convolution as a Cin x (2*2*Cout) matrix and its bias,
    columns ordered (row offset, column offset, channel)."""
    if tuple(conv.kernel_size) != (2, 2) or tuple(conv.stride) != (2, 2):
        raise ValueError("only 2x2 stride-2 transposed convolutions are supported")
    weight = conv.weight.detach()  # Cin x Cout x 2 x 2
    matrix = weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).contiguous()
    assert conv.bias is not None
    return matrix, conv.bias.detach().repeat(4)
