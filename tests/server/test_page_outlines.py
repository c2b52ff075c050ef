"""The page's mask geometry, run by Node: polygon outlines (web/src/outline.js), COCO RLE
(web/src/rle.js), brush strokes (web/src/brush.js) and the thresholded upscale
(web/src/masks.js), each against a reference computed here in numpy or by segany."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segany.data.rle import decode_counts, mask_to_rle, rle_box_area
from segany.data.scenes import SceneConfig, generate_scene
from tests.server.rings import fill_rings, near_boundary

SRC = Path(__file__).parents[2] / "web" / "src"
NODE = shutil.which("node")

# Each case: {"op": ..., masks as base64 bytes (row-major, one byte a pixel)}.
SCRIPT = """
import { outlines, traceRings, ringArea, simplify } from %(outline)s;
import { fromRle, toRle, decodeCounts } from %(rle)s;
import { stampSegment, applyStroke } from %(brush)s;
import { upscale, threshold } from %(masks)s;
import { readFileSync } from "node:fs";
const bytes = (text) => new Uint8Array(Buffer.from(text, "base64"));
const b64 = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
const run = (c) => {
  if (c.op === "trace") {
    const mask = bytes(c.mask), rings = traceRings(mask, c.width, c.height);
    const simple = outlines(mask, c.width, c.height, c.tolerance);
    return { rings, areas: rings.map(ringArea), simple };
  }
  if (c.op === "simplify") return simplify(c.ring, c.tolerance);
  if (c.op === "fromRle") return b64(fromRle(c.rle, c.box || null));
  if (c.op === "toRle") return toRle(bytes(c.mask), c.height, c.width);
  if (c.op === "counts") return decodeCounts(c.text);
  if (c.op === "stamp") {
    const mask = bytes(c.mask);
    const dirty = c.stroke ? applyStroke(mask, c.width, c.height, c.stroke)
      : stampSegment(mask, c.width, c.height, c.a, c.b, c.r, c.value);
    return { mask: b64(mask), dirty };
  }
  if (c.op === "upscale") {
    const low = Float32Array.from(c.low);
    const fused = upscale(low, c.L, c.S, c.input, c.image, 0);
    const plain = threshold(upscale(low, c.L, c.S, c.input, c.image), 0);
    return { fused: b64(fused), plain: b64(plain) };
  }
  throw new Error(c.op);
};
const cases = JSON.parse(readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(cases.map(run)));
"""


def _run(cases: list[dict[str, Any]]) -> list[Any]:
    assert NODE is not None, "Node.js is needed to run the page's code (make test needs it)"
    modules = ("outline", "rle", "brush", "masks")
    names = {k: json.dumps((SRC / f"{k}.js").as_uri()) for k in modules}
    command = [NODE, "--input-type=module", "-e", SCRIPT % names]
    done = subprocess.run(
        command, input=json.dumps(cases), capture_output=True, text=True, check=True
    )
    return list(json.loads(done.stdout))


def _b64(mask: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(mask, dtype=np.uint8).tobytes()).decode()


def _unb64(text: str, shape: tuple[int, int]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.uint8).reshape(shape).astype(bool)


def _trace(mask: np.ndarray, tolerance: float = 1.0) -> dict[str, Any]:
    height, width = mask.shape
    case = {"op": "trace", "mask": _b64(mask), "width": width, "height": height,
            "tolerance": tolerance}  # fmt: skip
    return dict(_run([case])[0])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def test_a_rectangle_is_four_corners_and_diagonal_pixels_are_two_objects() -> None:
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:7, 3:11] = True
    answer = _trace(mask)
    assert answer["rings"] == [[[3, 2], [11, 2], [11, 7], [3, 7]]]
    assert answer["areas"] == [40]
    assert answer["simple"] == answer["rings"]

    diagonal = np.zeros((3, 3), dtype=bool)
    diagonal[0, 0] = diagonal[1, 1] = True
    answer = _trace(diagonal)
    assert sorted(answer["areas"]) == [1, 1]  # 4-connected: not one object
    assert answer["simple"] == answer["rings"]  # specks are kept as traced

    assert _trace(np.zeros((4, 5), dtype=bool))["rings"] == []
    full = np.ones((4, 5), dtype=bool)  # edges on the image's border
    assert _trace(full)["rings"] == [[[0, 0], [5, 0], [5, 4], [0, 4]]]


def test_a_hole_runs_the_other_way() -> None:
    mask = np.zeros((20, 20), dtype=bool)
    mask[2:18, 2:18] = True
    mask[6:10, 5:12] = False
    answer = _trace(mask)
    assert sorted(answer["areas"]) == [-28, 256]
    assert sum(answer["areas"]) == mask.sum()
    assert np.array_equal(fill_rings(answer["rings"], 20, 20), mask)


def test_outlines_of_generated_objects() -> None:
    """Traced rings enclose exactly the mask's pixels; simplified to 1 px, they differ from
    the mask only next to its boundary (within 2 px), with far fewer vertices."""
    masks = []
    for seed in (3, 4):
        masks += list(generate_scene(seed, SceneConfig(size=(180, 240))).masks[:4])
    ious, traced, kept = [], 0, 0
    for mask in masks:
        answer = _trace(mask)
        assert np.array_equal(fill_rings(answer["rings"], *mask.shape), mask)
        assert sum(answer["areas"]) == mask.sum()
        simple = fill_rings(answer["simple"], *mask.shape)
        ious.append(_iou(simple, mask))
        assert not np.any((simple != mask) & ~near_boundary(mask, 2))
        traced += sum(len(r) for r in answer["rings"])
        kept += sum(len(r) for r in answer["simple"])
        # every kept vertex is a vertex of the traced ring (Douglas-Peucker only drops)
        corners = {tuple(p) for ring in answer["rings"] for p in ring}
        assert all(tuple(p) in corners for ring in answer["simple"] for p in ring)
    assert float(np.mean(ious)) >= 0.95, ious
    assert kept < traced / 2, (kept, traced)


def test_simplify_keeps_points_within_the_tolerance() -> None:
    ring = [[0, 0], [5, 0.4], [10, 0], [10, 10], [5, 9.2], [0, 10]]
    assert _run([{"op": "simplify", "ring": ring, "tolerance": 1}])[0] == [
        [0, 0], [10, 0], [10, 10], [0, 10]]  # fmt: skip
    assert _run([{"op": "simplify", "ring": ring, "tolerance": 0.5}])[0] == [
        [0, 0], [10, 0], [10, 10], [5, 9.2], [0, 10]]  # fmt: skip


def test_rle_decodes_the_servers_compressed_counts() -> None:
    rng = np.random.default_rng(1)
    masks = [rng.random((23, 31)) > 0.6, np.zeros((7, 5), bool), np.ones((7, 5), bool)]
    masks.append(generate_scene(5, SceneConfig(size=(120, 160))).masks[0])
    first = np.zeros((6, 4), bool)
    first[0, 0] = True  # a mask starting with a set pixel: a first run of 0
    masks.append(first)
    cases = []
    for mask in masks:
        cases.append({"op": "fromRle", "rle": mask_to_rle(mask)})
        cases.append({"op": "fromRle", "rle": mask_to_rle(mask, compressed=False)})
        cases.append({"op": "toRle", "mask": _b64(mask), "height": mask.shape[0],
                      "width": mask.shape[1]})  # fmt: skip
        cases.append({"op": "counts", "text": mask_to_rle(mask)["counts"]})
    answers = _run(cases)
    for k, mask in enumerate(masks):
        compressed, plain, encoded, counts = answers[4 * k : 4 * k + 4]
        assert np.array_equal(_unb64(compressed, mask.shape), mask)
        assert np.array_equal(_unb64(plain, mask.shape), mask)
        assert encoded == mask_to_rle(mask, compressed=False)
        assert counts == decode_counts(mask_to_rle(mask)["counts"])


def _capsule(shape: tuple[int, int], a: list[float], b: list[float], r: float) -> np.ndarray:
    """Pixels whose centre is within r of segment a-b."""
    ys, xs = np.mgrid[: shape[0], : shape[1]] + 0.5
    p = np.stack([xs - a[0], ys - a[1]], axis=-1)
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    length2 = float(d @ d)
    t = np.clip((p @ d) / length2, 0, 1) if length2 else np.zeros(shape)
    gap = p - t[..., None] * d
    return np.asarray((gap**2).sum(-1) <= r * r)


@pytest.mark.parametrize(
    ("a", "b", "r"),
    [([10.2, 8.7], [10.2, 8.7], 4.0), ([3, 3], [30.5, 17.25], 2.5), ([-5, 12], [12, 40], 6)],
)
def test_brush_paints_the_pixels_within_its_radius(
    a: list[float], b: list[float], r: float
) -> None:
    shape = (30, 40)
    base = np.zeros(shape, dtype=bool)
    base[::3, ::3] = True
    case = {"op": "stamp", "mask": _b64(base), "width": 40, "height": 30, "a": a, "b": b, "r": r}
    painted, erased = _run([{**case, "value": 1}, {**case, "value": 0}])
    want = _capsule(shape, a, b, r)
    assert np.array_equal(_unb64(painted["mask"], shape), base | want)
    assert np.array_equal(_unb64(erased["mask"], shape), base & ~want)
    x0, y0, x1, y1 = painted["dirty"]
    ys, xs = np.nonzero(want)
    assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1


def test_a_stroke_is_its_segments() -> None:
    shape = (50, 60)
    points = [[5, 5], [20, 8], [22, 30], [50, 44]]
    stroke = {"points": points, "radius": 3, "erase": False}
    case = {"op": "stamp", "mask": _b64(np.zeros(shape)), "width": 60, "height": 50,
            "stroke": stroke}  # fmt: skip
    got = _unb64(_run([case])[0]["mask"], shape)
    want = np.zeros(shape, dtype=bool)
    for a, b in zip(points, points[1:], strict=False):
        want |= _capsule(shape, a, b, 3)
    assert np.array_equal(got, want)


def test_the_thresholded_upscale_equals_threshold_of_the_upscale() -> None:
    rng = np.random.default_rng(2)
    cases = []
    for low_side, side, size, image in [
        (8, 32, (24, 32), (61, 80)),
        (16, 64, (48, 64), (300, 400)),
    ]:
        cases.append({"op": "upscale", "low": rng.normal(size=low_side**2).tolist(), "L": low_side,
                      "S": side, "input": list(size), "image": list(image)})  # fmt: skip
    for answer in _run(cases):
        assert answer["fused"] == answer["plain"]


def test_rle_decodes_a_crop() -> None:
    """Committed masks are decoded into their bounding box only (large images)."""
    mask = np.zeros((60, 80), dtype=bool)
    mask[10:30, 20:50] = True
    mask[40:45, 5:9] = True
    box, _ = rle_box_area(mask_to_rle(mask))
    boxes = [[int(v) for v in box], [25, 12, 40, 40], [0, 0, 80, 60]]
    cases = [{"op": "fromRle", "rle": mask_to_rle(mask), "box": b} for b in boxes]
    for (x, y, w, h), answer in zip(boxes, _run(cases), strict=True):
        want = np.zeros((h, w), dtype=bool)
        part = mask[y : y + h, x : x + w]
        want[: part.shape[0], : part.shape[1]] = part
        assert np.array_equal(_unb64(answer, (h, w)), want)
