"""Execution modes: ``exact`` (fp32, the official operation order) and ``fast``.

A mode is applied to a built model in place (:func:`apply_mode`); everything that runs a
model goes through :func:`encode` and :func:`decode`, which feed each part its own dtype
and always hand back fp32, so callers never see the difference.

* ``exact``: fp32 weights; ViT attention in the official operation order; one prompt
  decoded by the decoder's own modules, several with the image-side work shared
  (:mod:`segany.engine.shared_decoder`, equal up to rounding).
* ``fast``: the fastest path this CPU has. Where it multiplies bf16 in hardware (AVX-512
  BF16 or AMX, :func:`~segany.engine.hardware.native_bf16`) it computes in bf16; elsewhere
  bf16 would be emulated several times slower than fp32, so it computes in fp32 and keeps
  the rest of the fast path. The image encoder runs on OpenVINO (in bf16 or fp32 as
  above) when ``openvino`` is installed (:mod:`segany.engine.openvino_backend`), else in
  PyTorch with ViT attention as one fused kernel (relative positions as an additive mask).
  Every prompt, even a single one, is decoded on the shared path with the image-side work
  remembered per image. The mask decoder holds bf16 weights if bf16 is native and it is
  at least :data:`BF16_DECODER_MIN_DIM` wide (SAM's and MobileSAM's, 256: bf16 decodes
  them markedly faster). A narrower decoder, like the bundled model's, stays fp32: there
  bf16 made the two-way transformer slower and its rounding reordered SegEvery's near-tied
  masks (docs/benchmarks.md, 'Quality of "fast" on the bundled model'). The prompt
  encoder (its Fourier features need fp32 to place points precisely) stays fp32.
"""

from __future__ import annotations

from typing import Protocol

import torch

from ..models import vit
from ..models.sam import Sam
from .hardware import native_bf16
from .image_side import prime as prime_shared
from .memo import tensor_version
from .openvino_backend import OpenVinoEncoder, openvino_available
from .shared_decoder import decode_shared, decode_shared_above

__all__ = [
    "MODES",
    "Runtime",
    "apply_mode",
    "compute_dtype",
    "decode",
    "decode_prompts",
    "decode_prompts_above",
    "dense_pe",
    "encode",
    "low_res_size",
    "mode_of",
    "prime",
]


class Runtime(Protocol):
    """What segany needs of a model run by another runtime (e.g. ONNX Runtime)."""

    name: str
    image_size: int
    low_res_size: int
    mask_threshold: float
    device: torch.device

    def eval(self) -> Runtime: ...

    def preprocess(self, x: torch.Tensor) -> torch.Tensor: ...

    def postprocess_masks(
        self, masks: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int]
    ) -> torch.Tensor: ...

    def encode(self, images: torch.Tensor) -> torch.Tensor: ...

    def decode_prompts(
        self,
        features: torch.Tensor,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
        mask_input: torch.Tensor | None,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


MODES = ("exact", "fast")
#: Narrowest mask decoder (transformer width) that "fast" runs in bf16: a 256-wide decoder
#: decodes much faster in bf16 than in fp32; a 128-wide one runs its two-way transformer
#: slower in bf16, and SegEvery on the bundled model then matches fewer of the exact masks
#: (docs/benchmarks.md, 'Quality of "fast" on the bundled model').
BF16_DECODER_MIN_DIM = 256


def apply_mode(model: Sam, mode: str) -> Sam:
    """Switch ``model`` to ``mode`` in place and return it."""
    dtype = compute_dtype(mode)  # (refuses an unknown mode)
    model.fast_encoder = None
    if mode == "fast" and openvino_available():
        from ..weights import cache_dir

        model.image_encoder.to(torch.float32)  # OpenVINO converts from the fp32 weights
        model.fast_encoder = OpenVinoEncoder(
            model.image_encoder,
            model.image_size,
            precision="bf16" if dtype == torch.bfloat16 else "f32",
            cache_dir=cache_dir() / "openvino",
        )
    else:
        model.image_encoder.to(dtype)
    wide = model.mask_decoder.transformer_dim >= BF16_DECODER_MIN_DIM
    model.mask_decoder.to(dtype if wide else torch.float32)
    for module in model.image_encoder.modules():
        if isinstance(module, vit.Attention):
            module.fused = mode == "fast"
    model.mode = mode
    return model


def compute_dtype(mode: str) -> torch.dtype:
    """The dtype ``mode`` computes in on this CPU: fp32 for ``exact``; for ``fast`` bf16
    where the CPU multiplies it in hardware, else fp32 (emulated bf16 is slower)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return torch.bfloat16 if mode == "fast" and native_bf16() else torch.float32


def mode_of(model: Sam) -> str:
    """The mode ``model`` runs in ("exact" unless :func:`apply_mode` said otherwise)."""
    return str(getattr(model, "mode", "exact"))


def _dtype(module: torch.nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def dense_pe(model: Sam, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The prompt encoder's 1xCxHxW grid encoding in ``dtype``, computed once per weights.

    Cached on the model, keyed by the Gaussian matrix's storage and version (any change
    to it, ``load_state_dict`` included, recomputes the encoding).
    """
    matrix = model.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
    key = (matrix.data_ptr(), tensor_version(matrix), dtype)
    cached = model.__dict__.get("_dense_pe_cache")
    if cached is None or cached[0] != key:
        with torch.inference_mode(False), torch.no_grad():
            value = model.prompt_encoder.get_dense_pe().to(dtype)
        model.__dict__["_dense_pe_cache"] = cached = (key, value)
    return cached[1]


_LAST_CAST: list[tuple[torch.Tensor, int, torch.Tensor]] = []


def _cast(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``tensor.to(dtype)``, remembered for the last tensor cast (an image's embedding is
    cast once, not for every prompt on it). The source is kept alive and compared by
    identity and version, so a new tensor at a reused address never hits the cache."""
    if tensor.dtype == dtype:
        return tensor
    version = tensor_version(tensor)
    if _LAST_CAST:
        source, seen, result = _LAST_CAST[0]
        if source is tensor and seen == version and result.dtype == dtype:
            return result
    result = tensor.to(dtype)
    _LAST_CAST[:] = [(tensor, version, result)]
    return result


def _cast_dense(dense: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``dense.to(dtype)``, keeping a broadcast no-mask embedding broadcast (a plain cast
    would materialise its HxW copies, and the decoder recognises it by its zero strides)."""
    if dense.dim() == 4 and dense.stride(-1) == 0 and dense.stride(-2) == 0:
        return dense[:, :, :1, :1].to(dtype).expand(dense.shape)
    return dense.to(dtype)


def encode(model: Sam | Runtime, images: torch.Tensor) -> torch.Tensor:
    """Bx3xSxS preprocessed images -> BxCxHxW fp32 embeddings."""
    if not isinstance(model, Sam):
        return model.encode(images)
    if model.fast_encoder is not None:
        return model.fast_encoder(images)
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
    image_pe = dense_pe(model, dtype)
    if len(dense) > 1 and dense.stride(0) == 0:
        dense = dense[:1]  # the no-mask embedding, shared (keep it so through the cast)
    if mode_of(model) == "exact" and len(sparse) == 1:
        # One prompt, exact: the decoder's own modules, in the official operation order.
        logits, iou = model.mask_decoder(
            image_embeddings, image_pe, sparse, dense, multimask_output
        )
    else:
        logits, iou = decode_shared(
            model.mask_decoder,
            _cast(image_embeddings, dtype),
            image_pe,
            sparse.to(dtype),
            _cast_dense(dense, dtype),
            multimask_output,
        )
    return logits.float(), iou.float()


def prime(model: Sam | Runtime, features: torch.Tensor) -> None:
    """In ``fast`` mode, do the decoder's image-side work for ``features`` (1xCxHxW fp32)
    now, at encoding time, so that the first prompt on the image costs what the next ones
    do (:func:`~segany.engine.image_side.prime`); nothing in ``exact`` mode."""
    if not isinstance(model, Sam) or mode_of(model) != "fast":
        return
    dtype = _dtype(model.mask_decoder)
    _, dense = model.prompt_encoder(points=None, boxes=None, masks=None)
    prime_shared(
        model.mask_decoder,
        _cast(features, dtype),
        dense_pe(model, dtype),
        _cast_dense(dense, dtype),
    )


def decode_prompts(
    model: Sam | Runtime,
    features: torch.Tensor,
    point_coords: torch.Tensor | None,
    point_labels: torch.Tensor | None,
    boxes: torch.Tensor | None,
    mask_input: torch.Tensor | None,
    multimask_output: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode and decode prompts given in the encoder frame on one image's features.

    Arguments:
      point_coords: BxNx2 and point_labels: BxN, or None. boxes: Bx4 XYXY, or None.
      mask_input: Bx1xhxw low-res logits, or None.

    Returns:
      BxMxhxw fp32 low-res logits and BxM predicted IoU (M = 3 or 1).
    """
    if not isinstance(model, Sam):
        return model.decode_prompts(
            features, point_coords, point_labels, boxes, mask_input, multimask_output
        )
    points = None
    if point_coords is not None and point_labels is not None:
        points = (point_coords, point_labels)
    sparse, dense = model.prompt_encoder(points=points, boxes=boxes, masks=mask_input)
    return decode(model, features, sparse, dense, multimask_output)


def low_res_size(model: Sam | Runtime) -> int:
    """Side of the decoder's low-resolution logits (the mask_input size)."""
    if isinstance(model, Sam):
        return int(model.prompt_encoder.mask_input_size[0])
    return int(model.low_res_size)


def decode_prompts_above(
    model: Sam | Runtime,
    features: torch.Tensor,
    point_coords: torch.Tensor | None,
    point_labels: torch.Tensor | None,
    multimask_output: bool,
    min_iou: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Point prompts -> only the candidates whose predicted IoU is above ``min_iou``.

    Returns K kept flat indices into the BxM candidates, their Kxhxw fp32 low-res
    logits, and the BxM predicted IoU of all (see
    :func:`~segany.engine.shared_decoder.decode_shared_above`).
    """
    if not isinstance(model, Sam):
        logits, iou = decode_prompts(
            model, features, point_coords, point_labels, None, None, multimask_output
        )
        kept = torch.nonzero((iou > min_iou).flatten()).flatten()
        return kept, logits.flatten(0, 1)[kept], iou
    points = None
    if point_coords is not None and point_labels is not None:
        points = (point_coords, point_labels)
    sparse, dense = model.prompt_encoder(points=points, boxes=None, masks=None)
    dtype = _dtype(model.mask_decoder)
    kept, logits, iou = decode_shared_above(
        model.mask_decoder,
        _cast(features, dtype),
        dense_pe(model, dtype),
        sparse.to(dtype),
        _cast_dense(dense[:1], dtype),
        multimask_output,
        min_iou,
    )
    return kept, logits.float(), iou.float()
