"""Run an exported model (``segany export onnx``) with ONNX Runtime.

:class:`OnnxSam` stands in for a :class:`~segany.models.Sam` wherever segany runs a model
(:class:`~segany.Predictor`, :class:`~segany.MaskGenerator`)::

    model = OnnxSam("exported/")          # encoder.onnx, decoder.onnx, metadata.json
    predictor = segany.Predictor(model)

The files are checked against the sha256 sums in ``metadata.json`` before they are loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, InputError
from ..models.mask_decoder import output_slice
from ..models.sam import postprocess_masks, preprocess
from ..weights import sha256_file

__all__ = ["OnnxSam"]


class OnnxSam:
    """An exported encoder and decoder run by ONNX Runtime on the CPU.

    Arguments:
      folder: holds ``encoder.onnx``, ``decoder.onnx`` and ``metadata.json``.
      threads: intra-op threads of each session (None: ONNX Runtime's default).
    """

    mode = "onnx"
    is_random = False

    def __init__(self, folder: str | Path, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # an optional dependency
            raise InputError("the ONNX backend needs onnxruntime: pip install onnxruntime") from exc
        root = Path(folder)
        meta_path = root / "metadata.json"
        if not meta_path.is_file():
            raise InputError(f"{root} holds no metadata.json: not a segany ONNX export")
        try:
            self.metadata: dict[str, Any] = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{meta_path} is not valid JSON: {exc}") from exc
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        sessions = {}
        for name, expected in self.metadata["files"].items():
            path = root / name
            if not path.is_file():
                raise CheckpointError(f"{path} is missing")
            if sha256_file(path) != expected:
                raise CheckpointError(f"{path} fails its sha256 check (metadata.json)")
            sessions[name] = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        self.encoder, self.decoder = sessions["encoder.onnx"], sessions["decoder.onnx"]
        self.name = str(self.metadata["model"])
        self.image_size = int(self.metadata["input_size"])
        self.low_res_size = int(self.metadata["low_res_size"])
        self.mask_threshold = float(self.metadata["mask_threshold"])
        self.pixel_mean = torch.tensor(self.metadata["pixel_mean"]).view(-1, 1, 1)
        self.pixel_std = torch.tensor(self.metadata["pixel_std"]).view(-1, 1, 1)
        self.device = torch.device("cpu")

    def eval(self) -> OnnxSam:
        return self

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise and pad: 1x3xhxw -> 1x3xSxS."""
        return preprocess(x.float(), self.pixel_mean, self.pixel_std, self.image_size)

    def postprocess_masks(
        self, masks: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int]
    ) -> torch.Tensor:
        """Low-res logits BxCxhxw -> logits at the original image size BxCxHxW."""
        return postprocess_masks(masks, self.image_size, input_size, original_size)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """1x3xSxS preprocessed image -> 1xCxHxW embedding."""
        out = self.encoder.run(None, {"image": images.float().numpy()})[0]
        return torch.from_numpy(out)

    def decode_prompts(
        self,
        features: torch.Tensor,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
        mask_input: torch.Tensor | None,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts in the encoder frame (as ``Predictor.predict_low_res`` takes them) ->
        BxMxhxw low-res logits and BxM predicted IoU."""
        coords, labels = to_point_format(point_coords, point_labels, boxes)
        batch = coords.shape[0]
        if mask_input is None:
            masks = np.zeros((batch, 1, self.low_res_size, self.low_res_size), np.float32)
            has_mask = np.zeros(batch, np.float32)
        else:
            masks = mask_input.float().numpy()
            has_mask = np.ones(batch, np.float32)
        feeds = {
            "image_embeddings": features.float().numpy(),
            "point_coords": coords,
            "point_labels": labels,
            "mask_input": masks,
            "has_mask_input": has_mask,
        }
        low_res, iou = self.decoder.run(None, feeds)
        chosen = output_slice(multimask_output)
        return torch.from_numpy(low_res[:, chosen]), torch.from_numpy(iou[:, chosen])


def to_point_format(
    point_coords: torch.Tensor | None,
    point_labels: torch.Tensor | None,
    boxes: torch.Tensor | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Points (BxNx2, BxN) and boxes (Bx4) -> SAM's point format: BxKx2 and BxK float32.

    Box corners become points labelled 2 and 3; without a box, a padding point (label -1)
    is appended, as SAM's prompt encoder does.
    """
    parts_xy: list[np.ndarray] = []
    parts_label: list[np.ndarray] = []
    batch = None
    if point_coords is not None and point_labels is not None:
        parts_xy.append(point_coords.float().numpy())
        parts_label.append(point_labels.float().numpy())
        batch = point_coords.shape[0]
    if boxes is not None:
        corners = boxes.float().numpy().reshape(-1, 2, 2)
        parts_xy.append(corners)
        parts_label.append(np.tile(np.array([2.0, 3.0], np.float32), (len(corners), 1)))
        batch = corners.shape[0]
    if batch is None:
        raise InputError("the ONNX backend needs a point or a box prompt")
    if boxes is None:
        parts_xy.append(np.zeros((batch, 1, 2), np.float32))
        parts_label.append(-np.ones((batch, 1), np.float32))
    coords = np.concatenate([np.broadcast_to(p, (batch, *p.shape[1:])) for p in parts_xy], 1)
    labels = np.concatenate([np.broadcast_to(p, (batch, p.shape[1])) for p in parts_label], 1)
    return coords.astype(np.float32), labels.astype(np.float32)
