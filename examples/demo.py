"""segany demo: segment a generated scene from a click and from a box, write pictures.

Run with ``make demo``. Until the bundled trained model ships, the demo uses MobileSAM's
architecture with *random* weights (no weights can be downloaded on our machines), so
the masks show the pipeline working, not segmentation quality; it says so when it runs.
Pass ``--checkpoint mobile_sam.pt`` (the official file) to see real masks.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import segany
from segany.visualize import overlay_masks, save_png


def make_scene(width: int = 640, height: int = 480, seed: int = 0) -> np.ndarray:
    """A simple picture: a textured background with a few filled shapes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack([60 + xx * 60 // width, 80 + yy * 40 // height, 90 + 0 * xx], -1)
    background = background + rng.integers(-12, 12, (height, width, 3))
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((80, 90, 280, 300), fill=(220, 70, 60))
    draw.rectangle((340, 120, 560, 330), fill=(70, 160, 220))
    draw.polygon([(200, 440), (320, 300), (440, 440)], fill=(240, 200, 60))
    return np.asarray(image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_output"))
    parser.add_argument("--checkpoint", type=Path, default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    if args.checkpoint is not None:
        model = segany.load_model(checkpoint=args.checkpoint)
    else:
        model = segany.load_model("mobile_sam", pretrained=False)
        print("note: using MobileSAM with RANDOM weights (no trained model is bundled yet);")
        print("      masks show the pipeline, not quality. --checkpoint PATH loads real weights.")
    predictor = segany.Predictor(model)
    image = make_scene()
    save_png(image, args.out / "scene.png")

    start = time.perf_counter()
    predictor.set_image(image)
    encode_s = time.perf_counter() - start

    click = np.array([[180.0, 195.0]])
    start = time.perf_counter()
    by_click = predictor.predict(points=click, labels=[1])
    click_s = time.perf_counter() - start
    best = int(np.argmax(by_click.scores))
    save_png(
        overlay_masks(image, by_click.masks[best : best + 1], points=click, labels=np.array([1])),
        args.out / "click_overlay.png",
    )

    box = np.array([340.0, 120.0, 560.0, 330.0])
    by_box = predictor.predict(box=box, multimask=False)
    save_png(overlay_masks(image, by_box.masks, boxes=box[None]), args.out / "box_overlay.png")

    summary = {
        "model": model.name,
        "random_weights": model.is_random,
        "encode_seconds": round(encode_s, 3),
        "click_seconds": round(click_s, 4),
        "click_scores": [round(float(s), 4) for s in by_click.scores],
        "box_score": round(float(by_box.scores[0]), 4),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"pictures written to {args.out}/ (scene.png, click_overlay.png, box_overlay.png)")


if __name__ == "__main__":
    main()
