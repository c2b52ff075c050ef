"""The image side of the shared decoder: token-major image tokens and the projections of
the image's own tokens, remembered per image (:mod:`.memo`).

Without a mask prompt, the image tokens the two-way transformer starts from are the same
for every prompt on an image; so are the first block's key, value and query projections
of them. They are made once per image and kept, and :func:`prime` makes them when the
image is encoded, so that the first click costs what the next ones do.
"""

from __future__ import annotations

import torch

from ..models.mask_decoder import MaskDecoder
from ..models.transformer import TwoWayAttentionBlock
from .memo import memo

__all__ = ["image_tokens", "prime", "projected", "token_major", "with_pe"]


def projected(projection: torch.nn.Linear, source: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``projection(x)``, remembered while ``source`` (the tensor ``x`` is or is a view
    of) is the same: image tokens shared by every prompt are projected once per image."""
    return memo(f"proj{id(projection)}", (projection, source), lambda: projection(x))


def with_pe(block: TwoWayAttentionBlock, keys: torch.Tensor, key_pe: torch.Tensor) -> torch.Tensor:
    """``keys + key_pe`` for ``block``, remembered while both are the same tensors."""
    return memo(f"keys+pe{id(block)}", (keys, key_pe), lambda: keys + key_pe)


def image_tokens(
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    dense_prompt_embeddings: torch.Tensor,
    batch: int,
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """The token-major image tokens the blocks start from (Kx(H*W)xC, or Bx(H*W)xC with a
    mask prompt per prompt), their 1x(H*W)xC positional encoding, and whether the tokens
    are the image's own (no mask prompt: the same for every prompt batch, remembered)."""
    groups = image_embeddings.shape[0]
    dense = dense_prompt_embeddings
    if dense.shape[0] > 1 and dense.stride(0) == 0:
        dense = dense[:1]  # the no-mask embedding, the same for every prompt
    # Token-major and contiguous: every image-sized add and norm below then runs on dense
    # rows (on channel-major views they are several times slower and LayerNorm copies
    # first; docs/benchmarks.md, 'The shared decoder, made faster').
    shared = dense.shape[0] == 1 and dense.stride(-1) == 0 and dense.stride(-2) == 0
    if shared:
        # the no-mask embedding: one C-vector broadcast over the grid, compared by value
        keys = memo(
            "keys",
            (image_embeddings,),
            lambda: token_major(image_embeddings + dense),
            value_key=dense[0, :, 0, 0],
        )
    elif dense.shape[0] == 1:
        keys = token_major(image_embeddings + dense)
    else:
        src = image_embeddings.repeat_interleave(batch // groups, dim=0) + dense
        keys = token_major(src)
    key_pe = memo("key_pe", (image_pe,), lambda: token_major(image_pe))
    return keys, key_pe, shared


def prime(
    decoder: MaskDecoder,
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    dense_prompt_embeddings: torch.Tensor,
) -> None:
    """Do the image-side work every prompt without a mask prompt repeats on this image
    (token-major tokens, the first block's projections), so that the first click costs
    what the next ones do. Arguments as
    :func:`~segany.engine.shared_decoder.predict_masks_shared` (``dense``: the
    no-mask embedding); nothing happens under autograd, which remembers nothing."""
    keys, key_pe, shared = image_tokens(image_embeddings, image_pe, dense_prompt_embeddings, 1)
    if not shared or torch.is_grad_enabled():
        return
    block = decoder.transformer.layers[0]
    assert isinstance(block, TwoWayAttentionBlock)
    keys_pe = with_pe(block, keys, key_pe)
    projected(block.cross_attn_token_to_image.k_proj, keys_pe, keys_pe)
    projected(block.cross_attn_token_to_image.v_proj, keys, keys)
    if keys.shape[0] == 1:
        projected(block.cross_attn_image_to_token.q_proj, keys_pe, keys_pe[0])


def token_major(x: torch.Tensor) -> torch.Tensor:
    """BxCxHxW -> Bx(H*W)xC, contiguous."""
    return x.flatten(2).transpose(1, 2).contiguous()
