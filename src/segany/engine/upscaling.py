"""The mask decoder's upscaling path and hypernetwork product on token-major image tokens."""

from __future__ import annotations

import torch
from torch import nn

from ..models.common import LayerNorm2d
from ..models.mask_decoder import MaskDecoder

__all__ = ["mask_logits_tokens"]


def mask_logits_tokens(
    decoder: MaskDecoder,
    hs: torch.Tensor,
    keys: torch.Tensor,
    height: int,
    width: int,
    chosen: slice = slice(None),
) -> torch.Tensor:
    """:meth:`MaskDecoder.mask_logits` computed on token-major image tokens.

    Each 2x2, stride-2 transposed convolution of the upscaling path is a matrix product
    per image token (C_in -> 4 x C_out, one block per sub-pixel), the channel LayerNorm a
    norm over the last axis, and the hypernetwork product runs on the sub-pixel layout;
    only the final M masks are shuffled into place. The same function (equal up to
    rounding) without the channel-major layout changes and the slow channel-axis norm of
    the module path (faster on a CPU; docs/benchmarks.md, 'The shared decoder, made
    faster').

    Arguments:
      hs: BxNxC output tokens (IoU token, then the mask tokens). keys: Bx(H*W)xC image
        tokens after the transformer.
      chosen: which of the 1+M mask tokens to make masks for (all by default; the
        hypernetwork product and the final shuffle then run for those alone).

    Returns:
      (torch.Tensor): BxKx(4H)x(4W) logits, K the chosen tokens (1+M by default).
    """
    up1, norm, act1, up2, act2 = decoder.output_upscaling
    assert isinstance(up1, nn.ConvTranspose2d) and isinstance(up2, nn.ConvTranspose2d)
    assert isinstance(norm, LayerNorm2d) and up1.bias is not None and up2.bias is not None
    batch, tokens, _ = keys.shape
    mid, last = up1.out_channels, up2.out_channels
    # The biases ride in the products (addmm), repeated once per sub-pixel block.
    w1 = up1.weight.permute(0, 2, 3, 1).reshape(up1.in_channels, 4 * mid)  # (di, dj, c)
    x = torch.addmm(up1.bias.repeat(4), keys.reshape(batch * tokens, -1), w1)
    x = x.reshape(batch, tokens * 4, mid)
    x = act1(torch.nn.functional.layer_norm(x, (mid,), norm.weight, norm.bias, norm.eps))
    w2 = up2.weight.permute(0, 2, 3, 1).reshape(mid, 4 * last)  # (ei, ej, c)
    x = torch.addmm(up2.bias.repeat(4), x.reshape(batch * tokens * 4, mid), w2)
    x = act2(x.reshape(batch, tokens * 16, last))
    mask_tokens = hs[:, 1 : 1 + decoder.num_mask_tokens, :]
    mlps = decoder.output_hypernetworks_mlps
    which = range(decoder.num_mask_tokens)[chosen]
    hyper_in = torch.stack([mlps[i](mask_tokens[:, i, :]) for i in which], dim=1)  # BxKxlast
    masks = torch.bmm(x, hyper_in.transpose(1, 2))  # B x (H*W*16) x M, (i, j, di, dj, ei, ej)
    count = masks.shape[-1]
    masks = masks.reshape(batch, height, width, 2, 2, 2, 2, count)
    masks = masks.permute(0, 7, 1, 3, 5, 2, 4, 6)  # b, m, i, di, ei, j, dj, ej
    return masks.reshape(batch, count, 4 * height, 4 * width)
