"""The mask decoder alone: official operation order vs shared-image decoding, by batch size.

    .venv/bin/python benchmarks/bench_decoder.py [--model mobile_sam] [--prompts 64]

Prints ms per prompt for each number of prompts per decoder call; both paths decode the
same point prompts on the same random image embedding, interleaved.
"""

from __future__ import annotations

import argparse
import time

import torch

import segany
from segany.engine import decode_shared


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
    rows = {"official order (embedding copied per prompt)": [], "shared-image decoding": []}
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
