"""The mask decoder alone: official order, shared-image decoding (fp32, bf16, OpenVINO).

    .venv/bin/python benchmarks/bench_decoder.py [--model mobile_sam] [--prompts 64]

Prints ms per prompt for each number of prompts per decoder call; every path decodes the
same point prompts on the same random image embedding, interleaved. The OpenVINO row
converts the shared-image formulation (dynamic numbers of prompts) and runs it in bf16.
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings

import numpy as np
import torch

import segany
from segany.engine import decode_shared
from segany.engine.shared_decoder import predict_masks_shared


class _Shared(torch.nn.Module):
    def __init__(self, decoder: torch.nn.Module, image_pe: torch.Tensor) -> None:
        super().__init__()
        self.decoder = decoder
        self.register_buffer("image_pe", image_pe)

    def forward(self, embedding, sparse, dense):  # type: ignore[no-untyped-def]
        return predict_masks_shared(self.decoder, embedding, self.image_pe, sparse, dense)


def _openvino(decoder: torch.nn.Module, pe: torch.Tensor, embedding: torch.Tensor):  # type: ignore[no-untyped-def]
    import openvino as ov

    channels, height, width = pe.shape[1:]
    shapes = [
        ov.PartialShape([1, channels, height, width]),
        ov.PartialShape([-1, -1, channels]),
        ov.PartialShape([1, channels, height, width]),
    ]
    example = (embedding, torch.zeros((2, 2, channels)), torch.zeros((1, channels, height, width)))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        model = ov.convert_model(_Shared(decoder, pe).eval(), example_input=example, input=shapes)
    config = {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_NUM_THREADS": torch.get_num_threads()}  # fmt: skip
    request = ov.Core().compile_model(model, "CPU", config).create_infer_request()

    def run(embedding, sparse, dense):  # type: ignore[no-untyped-def]
        out = request.infer([t.float().numpy() for t in (embedding, sparse, dense[:1])])
        return np.array(out[0]), np.array(out[1])

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobile_sam")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = segany.load_model(args.model, pretrained=False)
    encoder, decoder = model.prompt_encoder, model.mask_decoder
    pe = encoder.get_dense_pe()
    embedding = torch.randn((1, encoder.embed_dim, *encoder.image_embedding_size))
    points = torch.rand((args.prompts, 1, 2)) * model.image_size
    labels = torch.ones((args.prompts, 1), dtype=torch.long)
    bf16 = copy.deepcopy(decoder).to(torch.bfloat16)
    openvino = _openvino(decoder, pe, embedding)
    rows: dict[str, list[float]] = {
        "official order (embedding copied per prompt)": [],
        "shared-image decoding": [],
        "shared-image decoding, torch bf16": [],
        "shared-image decoding, OpenVINO bf16": [],
    }
    sizes = (1, 4, 8, 16, 32, 64)
    with torch.inference_mode():
        for size in sizes:
            best = {name: float("inf") for name in rows}
            for _ in range(args.repeats):
                for name in rows:
                    start = time.perf_counter()
                    for first in range(0, args.prompts, size):
                        chunk = (points[first : first + size], labels[first : first + size])
                        sparse, dense = encoder(points=chunk, boxes=None, masks=None)
                        if name.startswith("official"):
                            decoder(embedding, pe, sparse, dense, True)
                        elif name.endswith("torch bf16"):
                            args = (embedding, pe, sparse, dense[:1])
                            decode_shared(bf16, *(t.bfloat16() for t in args), True)
                        elif name.endswith("OpenVINO bf16"):
                            openvino(embedding, sparse, dense)
                        else:
                            decode_shared(decoder, embedding, pe, sparse, dense, True)
                    best[name] = min(best[name], time.perf_counter() - start)
            for name in rows:
                rows[name].append(1000 * best[name] / args.prompts)
    print("| prompts per call | " + " | ".join(str(s) for s in sizes) + " |")
    print("|---" * (len(sizes) + 1) + "|")
    for name, values in rows.items():
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in values) + " |")


if __name__ == "__main__":
    main()
