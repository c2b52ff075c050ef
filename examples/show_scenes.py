"""Draw a grid of generated training scenes beside their instance masks.

Run ``.venv/bin/python examples/show_scenes.py`` to write ``docs/pictures/scenes.png``:
six scenes of :func:`segany.data.generate_scene`, each followed by its instances. In the
mask panels every pixel takes the colour of the deepest instance covering it (parts are
tinted versions of their object's colour), whole objects are outlined in white, parts and
sub-parts in black, and unlabelled background is dark grey. Only NumPy and Pillow are used.
"""

from __future__ import annotations

import argparse
import colorsys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from segany.data import Scene, SceneConfig, generate_scene

TILE = 300  # longest side of each panel, in pixels
GAP = 8
CAPTION = 16


def instance_picture(scene: Scene) -> np.ndarray:
    """An ``HxWx3`` uint8 picture of the instances: deepest instance colour per pixel."""
    height, width = scene.image.shape[:2]
    deepest = np.full((height, width), -1, dtype=np.int64)
    for index in range(len(scene)):  # parents precede children, so the deepest wins
        deepest[scene.masks[index]] = index
    colours = np.zeros((len(scene) + 1, 3))
    colours[-1] = (40, 40, 40)
    rng = np.random.default_rng(1)
    for index in range(len(scene)):
        parent = int(scene.parent[index])
        if parent < 0:
            hue, sat, val = rng.random(), rng.uniform(0.5, 0.9), rng.uniform(0.7, 1.0)
            colours[index] = np.array(colorsys.hsv_to_rgb(hue, sat, val)) * 255
        else:
            tint = rng.uniform(-0.45, 0.45)
            base = colours[parent]
            colours[index] = base + tint * (255 - base) if tint > 0 else base * (1 + tint)
    picture = colours[deepest].astype(np.uint8)
    whole = np.full((height, width), -1, dtype=np.int64)
    for index in np.flatnonzero(scene.parent < 0):
        whole[scene.masks[index]] = index
    picture[_edges(deepest)] = (0, 0, 0)
    picture[_edges(whole)] = (255, 255, 255)
    return picture


def _edges(labels: np.ndarray) -> np.ndarray:
    """``HxW`` bool: pixels whose right or lower neighbour has another label."""
    edges = np.zeros(labels.shape, dtype=bool)
    edges[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edges[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edges


def _panel(array: np.ndarray) -> Image.Image:
    """Scale an image so its longest side is ``TILE`` pixels (nearest neighbour)."""
    image = Image.fromarray(array)
    factor = TILE / max(image.size)
    size = (round(image.width * factor), round(image.height * factor))
    return image.resize(size, Image.Resampling.NEAREST)


def make_grid(seeds: list[int], config: SceneConfig, columns: int = 2) -> Image.Image:
    """A grid of ``(scene, instances)`` panel pairs, ``columns`` pairs per row."""
    rows = -(-len(seeds) // columns)
    cell_w, cell_h = 2 * TILE + GAP, TILE + CAPTION
    grid = Image.new(
        "RGB",
        (columns * cell_w + (columns + 1) * 2 * GAP, rows * cell_h + (rows + 1) * GAP),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(grid)
    for position, seed in enumerate(seeds):
        scene = generate_scene(seed, config)
        left = 2 * GAP + (position % columns) * (cell_w + 2 * GAP)
        top = GAP + (position // columns) * (cell_h + GAP)
        height, width = scene.image.shape[:2]
        clutter = scene.kinds.count("clutter")
        objects = int((scene.parent < 0).sum()) - clutter
        parts = len(scene) - objects - clutter
        caption = (
            f"seed {seed}: {width}x{height}, {objects} objects, {parts} parts and sub-parts, "
            f"{clutter} clutter"
        )
        draw.text((left, top), caption, fill=(0, 0, 0))
        grid.paste(_panel(scene.image), (left, top + CAPTION))
        grid.paste(_panel(instance_picture(scene)), (left + TILE + GAP, top + CAPTION))
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/pictures/scenes.png"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    make_grid(args.seeds, SceneConfig()).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
