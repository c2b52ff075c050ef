"""Execution modes: ``exact`` (fp32, the official operation order) and ``fast`` (bf16).

A mode is applied to a built model in place (:func:`apply_mode`); everything that runs a
model goes through :func:`encode` and :func:`decode`, which feed each part its own dtype
and always hand back fp32, so callers never see the difference.

* ``exact``: fp32 weights; ViT attention in the official operation order; one prompt
  decoded by the decoder's own modules, several with the image-side work shared
  (:mod:`segany.engine.shared_decoder`, equal up to rounding).
* ``fast``: the image encoder and the mask decoder hold bf16 weights and compute in bf16
  (AVX-512 BF16 or AMX matrix units where the CPU has them); ViT attention runs as one
  fused kernel with the relative positions as an additive mask. The prompt encoder (its
  Fourier features need fp32 to place points precisely) stays fp32.
"""

from __future__ import annotations

import torch

from ..models import vit
from ..models.sam import Sam
from .shared_decoder import decode_shared

__all__ = ["MODES", "apply_mode", "decode", "encode", "mode_of"]

MODES = ("exact", "fast")
_DTYPES = {"exact": torch.float32, "fast": torch.bfloat16}


def apply_mode(model: Sam, mode: str) -> Sam:
    """Switch ``model`` to ``mode`` in place and return it."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    dtype = _DTYPES[mode]
    model.image_encoder.to(dtype)
    model.mask_decoder.to(dtype)
    for module in model.image_encoder.modules():
        if isinstance(module, vit.Attention):
            module.fused = mode == "fast"
    model.mode = mode
    return model


def mode_of(model: Sam) -> str:
    """The mode ``model`` runs in ("exact" unless :func:`apply_mode` said otherwise)."""
    return str(getattr(model, "mode", "exact"))


def _dtype(module: torch.nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def encode(model: Sam, images: torch.Tensor) -> torch.Tensor:
    """Bx3xSxS preprocessed images -> BxCxHxW fp32 embeddings."""
    dtype = _dtype(model.image_encoder)
    return model.image_encoder(images.to(dtype)).float()


def decode(
    model: Sam,
    image_embeddings: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor,
    multimask_output: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode B prompts on one image: fp32 BxMxhxw low-res logits and BxM predicted IoU.

    Arguments:
      image_embeddings: 1xCxHxW. sparse: BxNxC and dense: BxCxHxW prompt embeddings.
    """
    dtype = _dtype(model.mask_decoder)
    image_pe = model.prompt_encoder.get_dense_pe()
    if len(dense) > 1 and dense.stride(0) == 0:
        dense = dense[:1]  # the no-mask embedding, shared (keep it so through the cast)
    if dtype == torch.float32 and len(sparse) == 1:
        # One prompt, exact: the decoder's own modules, in the official operation order.
        logits, iou = model.mask_decoder(
            image_embeddings, image_pe, sparse, dense, multimask_output
        )
    else:
        logits, iou = decode_shared(
            model.mask_decoder,
            image_embeddings.to(dtype),
            image_pe.to(dtype),
            sparse.to(dtype),
            dense.to(dtype),
            multimask_output,
        )
    return logits.float(), iou.float()
