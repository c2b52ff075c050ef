"""Export a model to ONNX: ``encoder.onnx``, ``decoder.onnx`` and ``metadata.json``.

The encoder takes the preprocessed image (normalised, padded to SxS, see
``metadata.json``) and returns the image embedding. The decoder takes, for B prompts at
once on one image, SAM's point format (as the official ONNX export does):

==================  ==========  ========================================================
input               shape       meaning
==================  ==========  ========================================================
image_embeddings    1xCxHxW     the encoder's output
point_coords        BxNx2       (x, y) in the encoder frame (resized image pixels)
point_labels        BxN         1 object, 0 background, 2 / 3 box corners, -1 padding
mask_input          Bx1x4Hx4W   low-res logits of a previous prediction
has_mask_input      B           1 where ``mask_input`` is used, 0 where not
==================  ==========  ========================================================

and returns ``low_res_masks`` Bx(1+M)x4Hx4W logits of every mask token (token 0 for an
unambiguous prompt, tokens 1..M for the M ambiguity-aware masks) and ``iou_predictions``
Bx(1+M). B and N are dynamic. A box is two points labelled 2 and 3; a prompt without a
box needs one padding point (label -1), as SAM's prompt encoder adds it.

Only operators that onnxruntime-web runs are used (opset 17: MatMul, Gemm, Conv,
LayerNormalization, Softmax, Erf, Sin, Cos, Where, ...), so the decoder runs in a browser.
The decoder graph is :class:`~segany.engine.onnx_decoder.OnnxDecoder`: the same function as
the PyTorch modules, rearranged so that a prompt costs less (see that module).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from ..fileio import atomic_path
from ..models.sam import Sam
from ..weights import sha256_file
from .onnx_decoder import OnnxDecoder

__all__ = ["GRAPH_VERSION", "OnnxDecoder", "export_onnx", "model_sha256"]

OPSET = 17
#: Which arrangement of the decoder graph an export holds (2: folded attention, matrix
#: upscaling); a cache of exports re-exports when it differs.
GRAPH_VERSION = 2


def model_sha256(model: Sam) -> str:
    """sha256 of the model's tensors (names and fp32 values): which weights these are,
    whatever file they came from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def export_onnx(model: Sam, out_dir: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Write ``encoder.onnx``, ``decoder.onnx`` and ``metadata.json`` into ``out_dir``.

    The exact (fp32) model is exported whatever mode ``model`` runs in. Returns the
    metadata (also written to ``metadata.json``).
    """
    from ..errors import InputError
    from .modes import apply_mode, mode_of

    out = Path(out_dir)
    names = ("encoder.onnx", "decoder.onnx", "metadata.json")
    existing = [n for n in names if (out / n).exists()]
    if existing and not overwrite:
        raise InputError(f"{out} already holds {', '.join(existing)}: pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    previous = mode_of(model)
    apply_mode(model, "exact")
    try:
        with warnings.catch_warnings():
            # The tracer warns where shapes are read as Python numbers: each such value is
            # fixed by the architecture (dynamic prompt and point counts are tested).
            warnings.simplefilter("ignore")
            _export_files(model.eval(), out)
    finally:
        apply_mode(model, previous)
    side = model.prompt_encoder.image_embedding_size[0]
    metadata: dict[str, Any] = {
        "model": model.name,
        "model_sha256": model_sha256(model),
        "input_size": model.image_size,
        "embedding": [model.prompt_encoder.embed_dim, side, side],
        "low_res_size": model.prompt_encoder.mask_input_size[0],
        "num_multimask_outputs": model.mask_decoder.num_multimask_outputs,
        "pixel_mean": [float(v) for v in model.pixel_mean.flatten()],
        "pixel_std": [float(v) for v in model.pixel_std.flatten()],
        "mask_threshold": model.mask_threshold,
        "opset": OPSET,
        "graph_version": GRAPH_VERSION,
        "files": {n: sha256_file(out / n) for n in names[:2]},
    }
    with atomic_path(out / "metadata.json") as tmp:
        tmp.write_text(json.dumps(metadata, indent=2))
    return metadata


def _export_files(model: Sam, out: Path) -> None:
    """Trace and write encoder.onnx and decoder.onnx (fp32)."""
    size = model.image_size
    side = model.prompt_encoder.image_embedding_size[0]
    channels = model.prompt_encoder.embed_dim
    low = model.prompt_encoder.mask_input_size[0]
    with torch.no_grad():
        image = torch.zeros((1, 3, size, size))
        with atomic_path(out / "encoder.onnx") as tmp:
            torch.onnx.export(
                model.image_encoder, (image,), str(tmp), input_names=["image"],
                output_names=["image_embeddings"], opset_version=OPSET, dynamo=False,
            )  # fmt: skip
        example = (
            torch.zeros((1, channels, side, side)),
            torch.zeros((2, 3, 2)),
            torch.tensor([[1, 0, -1], [2, 3, 1]], dtype=torch.float32),
            torch.zeros((2, 1, low, low)),
            torch.zeros(2),
        )
        inputs = ["image_embeddings", "point_coords", "point_labels", "mask_input",
                  "has_mask_input"]  # fmt: skip
        dynamic = {
            "point_coords": {0: "prompts", 1: "points"},
            "point_labels": {0: "prompts", 1: "points"},
            "mask_input": {0: "prompts"},
            "has_mask_input": {0: "prompts"},
            "low_res_masks": {0: "prompts"},
            "iou_predictions": {0: "prompts"},
        }
        with atomic_path(out / "decoder.onnx") as tmp:
            torch.onnx.export(
                OnnxDecoder(model).eval(), example, str(tmp), input_names=inputs,
                output_names=["low_res_masks", "iou_predictions"],
                dynamic_axes=dynamic, opset_version=OPSET, dynamo=False,
            )  # fmt: skip
