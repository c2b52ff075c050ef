"""The page's mask post-processing (web/src/masks.js, run by Node) against torch's."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from segany.data.rle import mask_to_rle

MASKS_JS = Path(__file__).parents[2] / "web" / "src" / "masks.js"
NODE = shutil.which("node")

SCRIPT = """
import { upscale, threshold, toRle } from %s;
import { readFileSync } from "node:fs";
const cases = JSON.parse(readFileSync(0, "utf8"));
const out = cases.map(({ low, L, S, input, image }) => {
  const logits = upscale(Float32Array.from(low), L, S, input, image);
  const mask = threshold(logits, 0);
  return { logits: Array.from(logits), rle: toRle(mask, image[0], image[1]) };
});
process.stdout.write(JSON.stringify(out));
"""


def _run(cases: list[dict]) -> list[dict]:
    assert NODE is not None, "Node.js is needed to run the page's code (make test needs it)"
    script = SCRIPT % json.dumps(MASKS_JS.as_uri())
    done = subprocess.run([NODE, "--input-type=module", "-e", script], input=json.dumps(cases),
                          capture_output=True, text=True, check=True)  # fmt: skip
    return list(json.loads(done.stdout))


def test_upscaling_and_rle_match_torch_and_segany() -> None:
    rng = np.random.default_rng(0)
    shapes = [
        (8, 32, (24, 32), (15, 20)),
        (8, 32, (32, 21), (61, 40)),
        (16, 64, (48, 64), (300, 400)),
    ]
    cases, expected = [], []
    for low_side, side, (in_h, in_w), (height, width) in shapes:
        low = rng.normal(size=(low_side, low_side)).astype(np.float32)
        framed = F.interpolate(torch.from_numpy(low)[None, None], (side, side), mode="bilinear",
                               align_corners=False)[..., :in_h, :in_w]  # fmt: skip
        full = F.interpolate(framed, (height, width), mode="bilinear", align_corners=False)
        expected.append(full[0, 0].numpy())
        cases.append({"low": low.ravel().tolist(), "L": low_side, "S": side,
                      "input": [in_h, in_w], "image": [height, width]})  # fmt: skip
    for answer, want in zip(_run(cases), expected, strict=True):
        logits = np.array(answer["logits"], dtype=np.float32).reshape(want.shape)
        assert np.abs(logits - want).max() < 1e-4
        mask = want > 0
        away = np.abs(want) > 1e-4  # pixels not on the threshold itself
        got = np.array(logits > 0)
        assert np.array_equal(got[away], mask[away])
        ours = mask_to_rle(got, compressed=False)
        assert answer["rle"]["counts"] == ours["counts"] and answer["rle"]["size"] == ours["size"]
