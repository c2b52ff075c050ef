"""Where the evaluation's centre click lands: the raster-order tie-break it had until
2026-12-07 against the exact one it has now (:func:`segany.data.masks.interior_point`).

Until 2026-12-07 the centre click was the deepest pixel under repeated 3x3 erosion (a
chessboard distance, in whole pixels), ties going to the first pixel in raster order. A
curve or strip of even width is equally deep all along its middle, so its "centre" was
its topmost end, often where it meets another object. Now it is the pixel farthest from
the boundary in exact Euclidean distance, ties going to the one nearest the centroid.

For the first ``--scenes`` held-out scenes this prints, by kind of instance, how many
centre clicks moved and by how much, and the bundled pipeline's centre-click mIoU from
either click on the objects whose click moved; ``--picture`` draws the ``--show`` objects
with the largest change of IoU (ground truth; the old click's answer; the new one's)::

    .venv/bin/python benchmarks/centre_placement.py --scenes 12 \\
        --picture docs/pictures/centre_click.png
"""

from __future__ import annotations

import argparse
import collections

import numpy as np
import torch
from PIL import Image

import segany
from segany.data.masks import binary_iou, interior_point
from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
from segany.visualize import overlay_masks, save_png


def raster_first_centre(mask: np.ndarray) -> tuple[float, float]:
    """The previous definition: chessboard depth, ties to the first pixel in raster order."""
    padded = torch.from_numpy(np.pad(mask, 1))[None, None].float()
    depth = torch.zeros_like(padded)
    while bool(padded.any()):
        depth += padded
        padded = -torch.nn.functional.max_pool2d(-padded, 3, stride=1, padding=1)
    flat = int(depth.flatten().argmax())
    width = mask.shape[1] + 2
    return flat % width + 0.5 - 1, flat // width + 0.5 - 1


def tile(
    image: np.ndarray,
    mask: np.ndarray,
    click: tuple[float, float] | None,
    window: tuple[int, int, int, int],
) -> Image.Image:
    """``image`` cut to ``window``, enlarged, with ``mask`` and ``click`` painted over it
    (:func:`segany.visualize.overlay_masks`)."""
    x0, y0, x1, y1 = window
    scale = 150 / max(x1 - x0, y1 - y0)
    size = (round((x1 - x0) * scale), round((y1 - y0) * scale))
    view = Image.fromarray(image[y0:y1, x0:x1]).resize(size, Image.NEAREST)
    shown = Image.fromarray(mask[y0:y1, x0:x1]).resize(size, Image.NEAREST)
    points = (
        None if click is None else np.array([[(click[0] - x0) * scale, (click[1] - y0) * scale]])
    )
    return Image.fromarray(overlay_masks(np.asarray(view), np.asarray(shown)[None], points=points))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument(
        "--moved", type=float, default=3.0, help="pixels a click must move to count"
    )
    parser.add_argument("--picture", help="PNG to draw the most changed objects into")
    parser.add_argument("--show", type=int, default=5)
    args = parser.parse_args()
    predictor = segany.Predictor(segany.load_model())
    counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    rows = []
    for scene in SceneDataset(args.scenes, EVAL_BASE_SEED):
        predictor.set_image(scene.image)
        for truth, kind in zip(scene.masks, scene.kinds, strict=True):
            old, new = raster_first_centre(truth), interior_point(truth)
            moved = float(np.hypot(old[0] - new[0], old[1] - new[1])) > args.moved
            counts[kind][0] += 1
            counts[kind][1] += moved
            if not moved:
                continue
            answers = []
            for click in (old, new):
                answer = predictor.predict(points=[list(click)], labels=[1])
                mask = answer.masks[int(np.argmax(answer.scores))]
                answers.append((binary_iou(mask, truth), mask, click))
            rows.append((scene.image, truth, kind, answers))
    print("| kind | objects | centre click moved |\n|---|---|---|")
    for kind, (total, moved) in sorted(counts.items()):
        print(f"| {kind} | {total} | {moved} |")
    if rows:
        before = np.mean([r[3][0][0] for r in rows])
        after = np.mean([r[3][1][0] for r in rows])
        print(
            f"\nthe {len(rows)} objects whose click moved: mIoU {before:.3f}"
            f" (raster-first) -> {after:.3f}"
        )
    if args.picture and rows:
        rows.sort(key=lambda r: r[3][0][0] - r[3][1][0])
        draw(rows[: args.show], args.picture)


def draw(rows: list, path: str) -> None:
    """One row per object (ground truth; the old click's answer; the new one's) into ``path``."""
    tiles = []
    for image, truth, _, answers in rows:
        ys, xs = np.nonzero(truth | answers[0][1] | answers[1][1])
        pad = 12
        window = (
            max(xs.min() - pad, 0),
            max(ys.min() - pad, 0),
            min(xs.max() + pad, image.shape[1]),
            min(ys.max() + pad, image.shape[0]),
        )
        tiles.append(
            [tile(image, truth, None, window)]
            + [tile(image, mask, click, window) for _, mask, click in answers]
        )
    width = max(sum(t.width for t in row) + 8 * len(row) for row in tiles)
    height = sum(max(t.height for t in row) + 8 for row in tiles)
    canvas = Image.new("RGB", (width, height), "white")
    y = 0
    for row in tiles:
        x = 0
        for t in row:
            canvas.paste(t, (x, y))
            x += t.width + 8
        y += max(t.height for t in row) + 8
    save_png(np.asarray(canvas), path)


if __name__ == "__main__":
    main()
