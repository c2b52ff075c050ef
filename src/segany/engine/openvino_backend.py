"""The fast mode's image encoder on OpenVINO (bf16 where the CPU has AVX-512 BF16 or AMX).

OpenVINO compiles the whole encoder graph with fused kernels, which beats PyTorch's
eager bf16 on our CPUs (docs/benchmarks.md, 'Variants tried for the encoder'). The
encoder is converted from the PyTorch module once per set of weights and the converted
model is kept in the cache (``$SEGANY_CACHE/openvino/<hash>.xml``), so later loads skip
the conversion.

OpenVINO is optional (``pip install openvino``); without it the fast mode runs the
encoder in PyTorch bf16.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["OpenVinoEncoder", "openvino_available"]


def openvino_available() -> bool:
    """Whether the ``openvino`` package can be imported."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _weights_hash(module: nn.Module, image_size: int) -> str:
    digest = hashlib.sha256(f"{type(module).__name__}:{image_size}".encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


class OpenVinoEncoder:
    """An image encoder compiled by OpenVINO: 1x3xSxS fp32 in, 1xCxHxW fp32 out.

    Arguments:
      encoder: the PyTorch encoder (fp32 weights).
      image_size: S.
      precision: OpenVINO's inference precision ("bf16" or "f32").
      threads: inference threads (None: torch's thread count).
      cache_dir: where converted models are kept (None: no cache).
    """

    def __init__(
        self,
        encoder: nn.Module,
        image_size: int,
        precision: str = "bf16",
        threads: int | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.encoder = encoder
        self.image_size = image_size
        self.precision = precision
        self.threads = threads
        self.cache_dir = cache_dir
        self._request: object | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, object]:  # copies recompile on first use
        state = dict(self.__dict__)
        state["_request"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _compile(self) -> object:
        import openvino as ov

        core = ov.Core()
        model = None
        path = None
        if self.cache_dir is not None:
            path = self.cache_dir / f"{_weights_hash(self.encoder, self.image_size)}.xml"
            if path.is_file():
                model = core.read_model(str(path))
        if model is None:
            example = torch.zeros((1, 3, self.image_size, self.image_size))
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                model = ov.convert_model(self.encoder.eval(), example_input=example)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".part.xml")
                ov.save_model(model, str(tmp), compress_to_fp16=False)
                tmp.with_suffix(".bin").replace(path.with_suffix(".bin"))
                tmp.replace(path)
        config = {
            "INFERENCE_PRECISION_HINT": self.precision,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": self.threads or torch.get_num_threads(),
        }
        return core.compile_model(model, "CPU", config).create_infer_request()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        with self._lock:  # one infer request: one image at a time
            if self._request is None:
                self._request = self._compile()
            outputs = []
            for image in images.float():
                result = self._request.infer([image[None].numpy()])  # type: ignore[attr-defined]
                outputs.append(torch.from_numpy(np.array(result[0])))
        return torch.cat(outputs)
