"""SAM's mask decoder for many prompts on one image, without a copy of the image per prompt.

The official decoder repeats the image embedding once per prompt and then projects every
image token through the cross-attention layers of every prompt. This module computes the
same function (equal up to floating-point rounding) with the products reassociated so that
the image-sized work is shared or reduced to the few prompt tokens:

* token -> image attention. Where the image tokens are still the same for every prompt (the
  first block without a mask prompt), their key and value projections are computed once.
  Where they differ per prompt, the projections are folded into the few queries:
  ``q_h · (x Wk_h + bk_h) = (q_h Wk_h) · x + const`` (a per-query constant, which softmax
  ignores), and ``softmax · (x Wv_h + bv_h) = (softmax · x) Wv_h + bv_h``.
* image -> token attention. The query projection is folded into the tokens' keys,
  ``(x Wq_h + bq_h) · k_h = x · (Wq_h k_h) + bq_h · k_h``, and the output projection into
  the tokens' values, ``Σ_h softmax_h (v_h Wo_h)``.

With ``C``-wide image tokens, ``Ci = C / 2`` inner width, ``h`` heads and ``N`` prompt tokens
(7 for a point), the image-sized cost of one attention falls from ``C·Ci`` to ``h·N·C`` per
image token (``Ci / (h·N) = 128 / 56`` times fewer operations for SAM's decoder), and no
per-prompt copy of the embedding is made before the first block changes it. The upscaling
path runs on token-major image tokens (:mod:`.upscaling`); image-side work repeated by every
prompt batch on one image is remembered (:mod:`.image_side`). Everything else (token
self-attention, MLPs, norms and the heads) runs the decoder's own modules.
"""

from __future__ import annotations

import math

import torch

from ..models.mask_decoder import MaskDecoder, output_slice
from ..models.transformer import Attention, TwoWayAttentionBlock
from .image_side import image_tokens, projected, with_pe
from .upscaling import mask_logits_tokens

__all__ = [
    "decode_shared",
    "decode_shared_above",
    "final_attention",
    "predict_masks_shared",
    "transformer_blocks",
    "transformer_shared",
]


def _heads(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """A (heads*d)xC projection weight -> heads x d x C."""
    return weight.reshape(num_heads, weight.shape[0] // num_heads, weight.shape[1])


def token_to_image(
    attn: Attention,
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    shared: bool = False,
) -> torch.Tensor:
    """``attn(queries, keys, values)`` with few queries and many (image) keys.

    Arguments:
      queries: BxNxC prompt tokens (with their positional encoding added).
      keys: KxHWxC image tokens plus positional encoding; values: KxHWxC image tokens.
        The B prompts come in K equal groups, group k attending to image tokens k
        (K = 1: all prompts share them; K = B: one set per prompt).
      shared: the keys and values are the image's own, the same for every prompt batch
        on it (the first block without a mask prompt): their projections, made once per
        image and remembered, are then used even for a single prompt.

    Returns:
      (torch.Tensor): BxNxC, as ``attn`` would return.
    """
    batch, count, channels = queries.shape
    groups = keys.shape[0]
    per_group = batch // groups
    heads = attn.num_heads
    head_dim = attn.internal_dim // heads
    q = attn.q_proj(queries).reshape(groups, per_group, count, heads, head_dim)
    scale = 1.0 / math.sqrt(head_dim)
    if shared or per_group * heads * count >= attn.internal_dim:  # project the image once
        k = projected(attn.k_proj, keys, keys)
        v = projected(attn.v_proj, values, values)
        k = k.reshape(groups, -1, heads, head_dim).permute(0, 2, 3, 1)
        v = v.reshape(groups, -1, heads, head_dim).transpose(1, 2)
        q = q.permute(0, 3, 1, 2, 4).reshape(groups * heads, per_group * count, head_dim)
        k = k.reshape(groups * heads, head_dim, -1)
        weights = (torch.bmm(q, k) * scale).softmax(dim=-1)
        out = torch.bmm(weights, v.reshape(groups * heads, -1, head_dim))
        out = out.reshape(groups, heads, per_group, count, head_dim).permute(0, 2, 3, 1, 4)
    else:  # fold the key and value projections into the few queries
        wk = _heads(attn.k_proj.weight, heads)  # h x d x C
        folded = torch.einsum("gpnhd,hdc->gphnc", q, wk).reshape(groups, -1, channels)
        weights = (torch.bmm(folded, keys.transpose(1, 2)) * scale).softmax(dim=-1)
        mixed = torch.bmm(weights, values).reshape(groups, per_group, heads, count, channels)
        wv = _heads(attn.v_proj.weight, heads)
        out = torch.einsum("gphnc,hdc->gpnhd", mixed, wv)
        out = out + attn.v_proj.bias.reshape(heads, head_dim)
    return attn.out_proj(out.reshape(batch, count, heads * head_dim))


def image_to_token(
    attn: Attention,
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    shared: bool = False,
) -> torch.Tensor:
    """``attn(queries, keys, values)`` with many (image) queries and few keys.

    Arguments:
      queries: KxHWxC image tokens plus positional encoding, in groups as in
        :func:`token_to_image`.
      keys: BxNxC prompt tokens plus positional encoding; values: BxNxC prompt tokens.
      shared: the queries are the image's own, the same for every prompt batch on it
        (see :func:`token_to_image`).

    Returns:
      (torch.Tensor): BxHWxC, as ``attn`` would return.
    """
    batch, count, channels = keys.shape
    groups, tokens = queries.shape[0], queries.shape[1]
    heads = attn.num_heads
    head_dim = attn.internal_dim // heads
    scale = 1.0 / math.sqrt(head_dim)
    k = attn.k_proj(keys).reshape(batch, count, heads, head_dim) * scale
    v = attn.v_proj(values).reshape(batch, count, heads, head_dim)
    # Logits are laid out prompt-token-major (.. x N x HW): the softmax over a prompt's N
    # tokens then runs along a non-last axis with the HW image tokens innermost, which
    # vectorises (a softmax over a last axis of N = 7 does not, and is much slower on a CPU;
    # docs/benchmarks.md, 'The shared decoder, made faster'), and no image-sized tensor is
    # transposed or copied.
    if groups == 1 and (shared or batch * count * heads >= attn.internal_dim):
        # Image tokens shared by every prompt (the first block): their query projection
        # is made once per image and kept; each prompt then costs h*N*d per image token.
        # (For a prompt or two on tokens of their own, folding is cheaper: below.)
        q = projected(attn.q_proj, queries, queries[0])
        q = q.reshape(tokens, heads, head_dim).permute(1, 2, 0)  # h x d x HW
        k_heads = k.permute(2, 0, 1, 3).reshape(heads, batch * count, head_dim)
        logits = torch.bmm(k_heads, q).reshape(heads, batch, count, tokens).transpose(0, 1)
    else:
        wq = _heads(attn.q_proj.weight, heads)  # h x d x C
        folded_k = torch.einsum("bnhd,hdc->bhnc", k, wq).reshape(groups, -1, channels)
        bias = torch.einsum("bnhd,hd->bhn", k, attn.q_proj.bias.reshape(heads, head_dim))
        logits = torch.baddbmm(bias.reshape(groups, -1, 1), folded_k, queries.transpose(1, 2))
        logits = logits.reshape(batch, heads, count, tokens)
    weights = logits.softmax(dim=2)
    wo = attn.out_proj.weight.reshape(channels, heads, head_dim)
    folded_v = torch.einsum("bnhd,chd->bhnc", v, wo).reshape(batch, heads * count, channels)
    weights = weights.reshape(batch, heads * count, tokens).transpose(1, 2)
    return torch.baddbmm(attn.out_proj.bias, weights, folded_v)


def _block(
    block: TwoWayAttentionBlock,
    queries: torch.Tensor,
    keys: torch.Tensor,
    query_pe: torch.Tensor,
    key_pe: torch.Tensor,
    shared: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:meth:`TwoWayAttentionBlock.forward` with shared or per-prompt image tokens
    (``shared``: the image's own, see :func:`token_to_image`)."""
    queries = block.attend_tokens(queries, query_pe)
    k = with_pe(block, keys, key_pe)
    update = token_to_image(block.cross_attn_token_to_image, queries + query_pe, k, keys, shared)
    queries = block.norm2(queries + update)
    queries = block.norm3(queries + block.mlp(queries))
    q = queries + query_pe
    update = image_to_token(block.cross_attn_image_to_token, k, q, queries, shared)
    if 1 < keys.shape[0] < update.shape[0]:
        keys = keys.repeat_interleave(update.shape[0] // keys.shape[0], dim=0)
    return queries, block.norm4(keys + update)


def decode_shared(
    decoder: MaskDecoder,
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    sparse_prompt_embeddings: torch.Tensor,
    dense_prompt_embeddings: torch.Tensor,
    multimask_output: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``decoder(...)`` for B prompts on K images, equal up to rounding.

    Arguments as :func:`predict_masks_shared`; ``multimask_output`` returns the 3
    ambiguity-aware masks instead of one.

    Returns:
      masks: BxMx(4H)x(4W) logits (M = 3 or 1); iou_pred: BxM.
    """
    return predict_masks_shared(
        decoder, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
        output_slice(multimask_output),
    )  # fmt: skip


def predict_masks_shared(
    decoder: MaskDecoder,
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    sparse_prompt_embeddings: torch.Tensor,
    dense_prompt_embeddings: torch.Tensor,
    chosen: slice = slice(None),
) -> tuple[torch.Tensor, torch.Tensor]:
    """:meth:`MaskDecoder.predict_masks` for B prompts on K images: every mask token.

    Arguments:
      image_embeddings: KxCxHxW; the B prompts come in K equal, consecutive groups, one
        per image (K = 1: every prompt is on the same image).
      image_pe: 1xCxHxW positional encoding.
      sparse_prompt_embeddings: BxNxC point and box tokens.
      dense_prompt_embeddings: BxCxHxW mask embeddings; when it is the no-mask embedding
        broadcast over the batch (a zero batch stride, as the prompt encoder returns it),
        it is shared and the first block's image-side work is done once per image.
      chosen: which of the 1+M mask tokens to return (all by default); masks are made
        for those alone.

    Returns:
      masks: BxKx(4H)x(4W) logits; iou_pred: BxK (K = 1+M by default).
    """
    hs, keys, (height, width) = transformer_shared(
        decoder, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings
    )
    masks = mask_logits_tokens(decoder, hs, keys, height, width, chosen)
    return masks, decoder.predict_iou(hs)[:, chosen]


def transformer_blocks(
    decoder: MaskDecoder,
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    sparse_prompt_embeddings: torch.Tensor,
    dense_prompt_embeddings: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, int]]:
    """The two-way transformer's blocks, before its final attention.

    Returns the BxNxC tokens, their BxNxC positional encoding (the input tokens), the
    Bx(H*W)xC image tokens, the 1x(H*W)xC image positional encoding and (H, W).
    """
    batch = sparse_prompt_embeddings.shape[0]
    groups = image_embeddings.shape[0]
    if batch % groups:
        raise ValueError(f"{batch} prompts do not split evenly over {groups} images")
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat(
        [output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse_prompt_embeddings], dim=1
    )
    keys, key_pe, shared = image_tokens(image_embeddings, image_pe, dense_prompt_embeddings, batch)
    height, width = image_embeddings.shape[-2:]
    transformer = decoder.transformer
    queries = tokens
    for block in transformer.layers:
        assert isinstance(block, TwoWayAttentionBlock)
        queries, keys = _block(block, queries, keys, tokens, key_pe, shared)
        shared = False  # the block made per-prompt image tokens
    if keys.shape[0] != batch:
        keys = keys.repeat_interleave(batch // keys.shape[0], dim=0)
    return queries, tokens, keys, key_pe, (height, width)


def final_attention(
    decoder: MaskDecoder,
    queries: torch.Tensor,
    tokens: torch.Tensor,
    keys: torch.Tensor,
    keys_with_pe: torch.Tensor,
) -> torch.Tensor:
    """The transformer's last token -> image attention and norm: BxNxC output tokens.

    Each output token depends on its own row of ``queries`` only (attention per query, a
    per-token norm), so it may be run for a subset of the tokens (the IoU token alone).

    Arguments:
      queries: BxNxC tokens after the blocks; tokens: BxNxC their positional encoding
        (the input tokens). keys: Bx(H*W)xC image tokens; keys_with_pe: the same plus
        the image positional encoding.
    """
    transformer = decoder.transformer
    update = token_to_image(
        transformer.final_attn_token_to_image, queries + tokens, keys_with_pe, keys
    )
    return transformer.norm_final_attn(queries + update)


def transformer_shared(
    decoder: MaskDecoder,
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    sparse_prompt_embeddings: torch.Tensor,
    dense_prompt_embeddings: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """The two-way transformer of :func:`predict_masks_shared` alone.

    Returns the BxNxC output tokens, the Bx(H*W)xC image tokens and (H, W).
    """
    queries, tokens, keys, key_pe, size = transformer_blocks(
        decoder, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings
    )
    return final_attention(decoder, queries, tokens, keys, keys + key_pe), keys, size


def decode_shared_above(
    decoder: MaskDecoder,
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    sparse_prompt_embeddings: torch.Tensor,
    dense_prompt_embeddings: torch.Tensor,
    multimask_output: bool,
    min_iou: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode, but upscale masks only for prompts with a predicted IoU above ``min_iou``.

    The IoU head reads the IoU token alone, so it is known before any mask is made; a mask
    whose predicted IoU is not above ``min_iou`` is filtered out by SegEvery anyway, and
    the upscaling path (most of the decoder's per-prompt work) runs only for the prompts
    with at least one mask left.

    Returns:
      kept: K flat indices into the BxM candidates (prompt-major), in order.
      logits: Kx(4H)x(4W) low-res logits of the kept candidates.
      iou_pred: BxM predicted IoU of every candidate.
    """
    queries, tokens, keys, key_pe, (height, width) = transformer_blocks(
        decoder, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings
    )
    chosen = output_slice(multimask_output)
    # The IoU head reads the IoU token alone: its final attention first, for every prompt;
    # the mask tokens' only for the prompts that keep a mask.
    keys_with_pe = keys + key_pe
    iou_hs = final_attention(decoder, queries[:, :1], tokens[:, :1], keys, keys_with_pe)
    iou_pred = decoder.predict_iou(iou_hs)[:, chosen]
    passing = iou_pred > min_iou
    prompts = torch.nonzero(passing.any(dim=1)).flatten()
    if len(prompts) == 0:
        empty = keys.new_zeros((0, 4 * height, 4 * width))
        return prompts, empty, iou_pred
    hs = final_attention(
        decoder, queries[prompts], tokens[prompts], keys[prompts], keys_with_pe[prompts]
    )
    logits = mask_logits_tokens(decoder, hs, keys[prompts], height, width, chosen)
    kept = torch.nonzero(passing.flatten()).flatten()
    selected = passing[prompts].flatten()
    return kept, logits.flatten(0, 1)[selected], iou_pred
