"""Side-by-side speed: segany exact, segany fast and the official code, in one process.

Every case runs on the same weights on every side (the official model, when its package
is installed, loads segany's state dict unchanged), interleaved round by round so machine
noise hits all sides alike; the median of the rounds is reported, with ratios to the
official code. Speed does not depend on the weights' values, so a model without
downloadable weights is timed with its random initialisation.

Cases (as ``segany bench`` prints them):
  encoder          ``set_image`` on a 1024x768 image (resize, normalise, encode)
  one click        one point, 3 masks pasted back at the 1024x768 original size
  64 boxes         64 boxes, 1 mask each, at the original size (the official code: one
                   ``predict_torch`` call with the 64 boxes, as its README batches them)
  everything       SegEvery, 32x32 points, default options, on a 512x512 image
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .engine import apply_mode
from .models.sam import Sam

__all__ = ["CASES", "BenchResult", "run_bench"]

CASES = ("encoder", "one click", "64 boxes", "everything")


@dataclass
class BenchResult:
    """Median seconds per case and side ("official", "exact", "fast")."""

    model: str
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    rounds: int = 0

    def table(self) -> str:
        """A Markdown table with ratios to the official code (or to exact without it)."""
        sides = [
            s for s in ("official", "exact", "fast") if any(s in v for v in self.seconds.values())
        ]
        base = "official" if "official" in sides else "exact"
        head = [f"{s} ms" for s in sides] + [f"{s} vs {base}" for s in sides if s != base]
        lines = ["| case | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
        for case, times in self.seconds.items():
            cells = [f"{times[s] * 1000:,.1f}" if s in times else "-" for s in sides]
            for side in sides:
                if side != base:
                    ok = side in times and base in times
                    cells.append(f"{times[base] / times[side]:.2f}x" if ok else "-")
            lines.append(f"| {case} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    from .data.scenes import SceneConfig, generate_scene

    return generate_scene(seed, SceneConfig(size=(height, width))).image


def _official(model: Sam) -> Any | None:
    """The official model with ``model``'s weights, or None if its package is missing."""
    from .reference import official_sam

    if model.config is None:
        return None
    try:
        official = official_sam(model.config)
    except ImportError:
        return None
    official.load_state_dict(model.state_dict())
    return official.eval()


def _official_cases(official: Any, image: np.ndarray, small: np.ndarray) -> dict[str, Callable]:
    module = type(official).__module__.split(".")[0]
    if module == "mobile_sam":
        from mobile_sam import SamAutomaticMaskGenerator, SamPredictor
    else:
        from segment_anything import SamAutomaticMaskGenerator, SamPredictor
    predictor = SamPredictor(official)
    generator = SamAutomaticMaskGenerator(official)
    boxes = _boxes(image.shape[:2])
    point = np.array([[image.shape[1] * 0.4, image.shape[0] * 0.5]])

    def many_boxes() -> object:
        tensor = torch.as_tensor(boxes, dtype=torch.float32)
        tensor = predictor.transform.apply_boxes_torch(tensor, image.shape[:2])
        return predictor.predict_torch(None, None, boxes=tensor, multimask_output=False)

    return {
        "encoder": lambda: predictor.set_image(image),
        "one click": lambda: predictor.predict(point_coords=point, point_labels=np.array([1])),
        "64 boxes": many_boxes,
        "everything": lambda: generator.generate(small),
    }


def _segany_cases(model: Sam, image: np.ndarray, small: np.ndarray) -> dict[str, Callable]:
    from .everything import MaskGenerator
    from .predictor import Predictor

    # as the official code
    predictor = Predictor(model, cache_size=0)
    generator = MaskGenerator(model)
    boxes = _boxes(image.shape[:2])
    point = np.array([[image.shape[1] * 0.4, image.shape[0] * 0.5]])
    return {
        "encoder": lambda: predictor.set_image(image),
        "one click": lambda: predictor.predict(points=point, labels=[1]),
        "64 boxes": lambda: predictor.predict(box=boxes, multimask=False),
        "everything": lambda: generator.generate(small),
    }


def _boxes(size: tuple[int, int], count: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    height, width = size
    x0 = rng.uniform(0, width * 0.7, count)
    y0 = rng.uniform(0, height * 0.7, count)
    sides = rng.uniform(0.1, 0.3, (count, 2)) * (width, height)
    return np.stack([x0, y0, x0 + sides[:, 0], y0 + sides[:, 1]], axis=1)


def run_bench(
    model: Sam,
    *,
    against_official: bool = True,
    rounds: int = 3,
    cases: tuple[str, ...] = CASES,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Time ``cases`` for the exact model, a fast copy and (if installed) the official code."""
    image, small = _image(768, 1024), _image(512, 512, seed=1)
    exact = apply_mode(model, "exact")
    fast = apply_mode(copy.deepcopy(model), "fast")
    sides: dict[str, dict[str, Callable]] = {}
    official = _official(exact) if against_official else None
    if official is not None:
        sides["official"] = _official_cases(official, image, small)
    sides["exact"] = _segany_cases(exact, image, small)
    sides["fast"] = _segany_cases(fast, image, small)
    samples: dict[str, dict[str, list[float]]] = {c: {s: [] for s in sides} for c in cases}
    for side in sides.values():  # the prompt cases need an image; warm every path up once
        side["encoder"]()
    for round_index in range(rounds):
        for case in cases:
            for name, side in sides.items():
                if case != "encoder":
                    side["encoder"]()  # each side prompts on its own, fresh embedding
                start = time.perf_counter()
                with torch.inference_mode():
                    side[case]()
                samples[case][name].append(time.perf_counter() - start)
                if progress is not None:
                    took = samples[case][name][-1]
                    progress(f"round {round_index + 1}/{rounds} {case} {name}: {took:.3f} s")
    result = BenchResult(model=str(model.name), rounds=rounds)
    for case in cases:
        result.seconds[case] = {s: statistics.median(v) for s, v in samples[case].items()}
    return result
