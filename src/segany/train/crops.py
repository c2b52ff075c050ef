"""Zoomed crops of training scenes: what the model sees when it answers a click on a crop.

At inference a click is also answered on square crops around it (:mod:`segany.refine.zoom`),
each resized to the model's input, so small objects appear several times larger than in
any whole scene the model was trained on, and their pixels are upsampled. Training on
such crops shows the model that view: :func:`zoom_crop` cuts a square window around a
random instance of a scene, as the zoom places its crops around a click, and keeps the
instances' visible parts inside it (``TrainConfig.zoom_crops`` of the training scenes are
replaced so).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..data.masks import tight_boxes
from ..data.scenes import Scene
from ..refine.zoom import ClickZoom

__all__ = ["CROP_FRACTIONS", "MIN_CROP_SIDE", "MIN_CROP_PIXELS", "zoom_crop"]

CROP_FRACTIONS = (0.2, 0.6)  # the crop's side, as a fraction of the scene's longest side
MIN_CROP_SIDE = ClickZoom.min_side  # pixels: the zoom's own floor for a crop's side
MIN_CROP_PIXELS = 16  # an instance keeps its place in a crop with at least this many pixels


def zoom_crop(scene: Scene, rng: np.random.Generator) -> Scene:
    """A square crop of ``scene`` around one of its instances, drawn by ``rng``.

    The side is a uniform fraction in :data:`CROP_FRACTIONS` of the longest side (at least
    :data:`MIN_CROP_SIDE` pixels, at most the scene), centred on a random pixel of a random
    instance and shifted to lie inside the image. Instances with fewer than
    :data:`MIN_CROP_PIXELS` pixels inside are dropped (a part lies inside its parent, so
    a kept part's parent is kept); the others keep their visible part, their tight boxes
    recomputed. A scene without instances is returned as it is.
    """
    if len(scene.masks) == 0:
        return scene
    height, width = scene.image.shape[:2]
    fraction = rng.uniform(*CROP_FRACTIONS)
    side = min(max(int(round(fraction * max(height, width))), MIN_CROP_SIDE), height, width)
    ys, xs = np.nonzero(scene.masks[int(rng.integers(len(scene.masks)))])
    pick = int(rng.integers(len(ys)))
    x0 = int(np.clip(xs[pick] - side // 2, 0, width - side))
    y0 = int(np.clip(ys[pick] - side // 2, 0, height - side))
    masks = scene.masks[:, y0 : y0 + side, x0 : x0 + side]
    kept = np.nonzero(masks.reshape(len(masks), -1).sum(1) >= MIN_CROP_PIXELS)[0]
    index = {int(old): new for new, old in enumerate(kept)}
    parent = np.array([index.get(int(scene.parent[i]), -1) for i in kept], dtype=np.int64)
    masks = np.ascontiguousarray(masks[kept])
    kinds = [scene.kinds[i] for i in kept] if scene.kinds else []
    return replace(
        scene,
        image=np.ascontiguousarray(scene.image[y0 : y0 + side, x0 : x0 + side]),
        masks=masks,
        parent=parent,
        boxes=tight_boxes(torch.from_numpy(masks)).numpy().astype(np.float64),
        kinds=kinds,
    )
