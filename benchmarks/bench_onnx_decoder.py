"""mobile_sam's decoder in onnxruntime-web: the official ONNX export against segany's.

    .venv/bin/python benchmarks/bench_onnx_decoder.py [--rounds 3] [--runs 30] [--out FILE]

One random MobileSAM (the official model, its weights loaded into segany's; none can be
downloaded here and speed does not depend on their values) is exported twice:

* **official**: ``mobile_sam.utils.onnx.SamOnnxModel`` with ``return_single_mask=True``, as
  the official ``scripts/export_onnx_model.py`` writes it for its web demo (it also
  upscales the chosen mask to the image inside the graph);
* **segany**: ``segany export onnx`` (all mask tokens at low resolution; the page
  upscales the chosen one itself, outside the timed run).

Both run under Node in onnxruntime-web (the WASM backend browsers use;
``web/tools/time_decoder.mjs``) on the same real embedding of a generated 1024x768 scene
and one click plus SAM's padding point, interleaved over ``--rounds``, with 1 and 2 WASM
threads. The low-resolution masks of the two are compared first (onnxruntime, native).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

import segany
from segany.data.scenes import SceneConfig, generate_scene
from segany.engine.onnx_export import export_onnx
from segany.loading import load_weights
from segany.models import build_sam
from segany.reference import official_sam

ROOT = Path(__file__).resolve().parents[1]
TIMER = ROOT / "web" / "tools" / "time_decoder.mjs"


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _export_official(official: torch.nn.Module, path: Path) -> None:
    from mobile_sam.utils.onnx import SamOnnxModel

    wrapper = SamOnnxModel(official, return_single_mask=True).eval()
    grid = official.prompt_encoder.image_embedding_size
    example = {
        "image_embeddings": torch.randn(1, 256, *grid),
        "point_coords": torch.randint(0, 1024, (1, 5, 2), dtype=torch.float),
        "point_labels": torch.randint(0, 4, (1, 5), dtype=torch.float),
        "mask_input": torch.randn(1, 1, 4 * grid[0], 4 * grid[1]),
        "has_mask_input": torch.tensor([1], dtype=torch.float),
        "orig_im_size": torch.tensor([768, 1024], dtype=torch.float),
    }
    dynamic = {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, tuple(example.values()), str(path), input_names=list(example),
            output_names=["masks", "iou_predictions", "low_res_masks"],
            dynamic_axes=dynamic, opset_version=17, dynamo=False,
        )  # fmt: skip


def _agreement(official: Path, ours: Path, embedding: np.ndarray) -> dict[str, float]:
    """Native onnxruntime: the official export's chosen low-res mask against segany's best
    multimask output for the same click (the page's choice), over 20 clicks."""
    import onnxruntime as ort

    first = ort.InferenceSession(str(official))
    second = ort.InferenceSession(str(ours))
    rng = np.random.default_rng(0)
    ious, gaps = [], []
    for _ in range(20):
        coords = np.array([[rng.uniform(0, 1024, 2), [0.0, 0.0]]], np.float32)
        labels = np.array([[1, -1]], np.float32)
        common = {
            "image_embeddings": embedding,
            "point_coords": coords,
            "point_labels": labels,
            "mask_input": np.zeros((1, 1, 256, 256), np.float32),
            "has_mask_input": np.zeros(1, np.float32),
        }
        size = {"orig_im_size": np.array([768, 1024], np.float32)}
        _, _, want = first.run(None, {**common, **size})
        masks, iou = second.run(None, common)
        got = masks[0, 1 + int(np.argmax(iou[0, 1:]))]
        gaps.append(float(np.abs(got - want[0, 0]).max() / max(np.abs(want).max(), 1e-6)))
        a, b = got > 0, want[0, 0] > 0
        if a.any() or b.any():
            ious.append(float((a & b).sum() / (a | b).sum()))
    return {"mask_iou_min": min(ious, default=1.0), "relative_logit_gap_max": max(gaps)}


def _time(model: Path, threads: int, runs: int, embedding: Path) -> dict[str, float]:
    out = subprocess.run(
        ["node", str(TIMER), str(model), str(threads), str(runs), "2", str(embedding)],
        check=True, capture_output=True, text=True, cwd=ROOT / "web",
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="segany-bench-onnx-"))
    torch.manual_seed(0)
    config = segany.get_spec("mobile_sam").config
    official = official_sam(config).eval()
    ours = build_sam(config)
    load_weights(ours, official.state_dict(), "mobile_sam", "random")
    ours.name = "mobile_sam"
    _export_official(official, work / "official.onnx")
    export_onnx(ours.eval(), work / "segany")
    scene = generate_scene(7, SceneConfig(size=(768, 1024)))
    image = torch.from_numpy(scene.image).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        embedding = official.image_encoder(official.preprocess(image)).numpy()
    (work / "embedding.f32").write_bytes(embedding.astype("<f4").tobytes())
    files = {"official": work / "official.onnx", "segany": work / "segany" / "decoder.onnx"}
    times: dict[str, list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for threads in (1, 2):
            for name, path in files.items():
                row = _time(path, threads, args.runs, work / "embedding.f32")
                times.setdefault(f"{name}, {threads} thread(s)", []).append(row)
    summary: dict[str, Any] = {
        key: {
            "median_ms": round(float(np.median([r["median"] for r in rows])), 1),
            "p95_ms": round(float(np.median([r["p95"] for r in rows])), 1),
            "round_medians": [round(r["median"], 1) for r in rows],
        }
        for key, rows in times.items()
    }
    results = {
        "cpu": _cpu(),
        "date": time.strftime("%Y-%m-%d"),
        "runtime": "onnxruntime-web (WASM) under Node "
        + subprocess.check_output(["node", "--version"], text=True).strip(),  # fmt: skip
        "agreement": _agreement(files["official"], files["segany"], embedding),
        "timings": summary,
    }
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
