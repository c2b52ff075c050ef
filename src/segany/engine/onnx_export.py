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
ConvTranspose, Softmax, Erf, Sin, Cos, Where, ...), so the decoder runs in a browser.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..fileio import atomic_path
from ..models.sam import Sam
from ..weights import sha256_file

__all__ = ["OnnxDecoder", "export_onnx", "model_sha256"]

OPSET = 17


class OnnxDecoder(nn.Module):
    """Prompt encoder + mask decoder in SAM's point format, for ONNX export (fp32)."""

    def __init__(self, model: Sam) -> None:
        super().__init__()
        self.prompt_encoder = model.prompt_encoder
        self.mask_decoder = model.mask_decoder
        self.input_size = model.image_size

    def _embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        encoder = self.prompt_encoder
        matrix = encoder.pe_layer.positional_encoding_gaussian_matrix
        scaled = 2 * ((coords + 0.5) / self.input_size) - 1
        angles = 2 * math.pi * (scaled @ matrix)
        embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
        kinds = labels.unsqueeze(-1)
        embedding = torch.where(kinds == -1, torch.zeros_like(embedding), embedding)
        embedding = embedding + (kinds == -1).float() * encoder.not_a_point_embed.weight
        for label in range(encoder.num_point_embeddings):
            weight = encoder.point_embed(label)
            embedding = embedding + (kinds == label).float() * weight
        return embedding

    def forward(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """See the module docstring for shapes."""
        encoder = self.prompt_encoder
        sparse = self._embed_points(point_coords, point_labels)
        with_mask = has_mask_input.reshape(-1, 1, 1, 1)
        dense = with_mask * encoder.mask_downscaling(mask_input)
        dense = dense + (1 - with_mask) * encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        batch = point_coords.shape[0]
        embedding = image_embeddings.expand(batch, -1, -1, -1)
        return self.mask_decoder.predict_masks(embedding, encoder.get_dense_pe(), sparse, dense)


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
