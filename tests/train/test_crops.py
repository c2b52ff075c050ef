"""Zoomed crops of training scenes (segany.train.crops) and their use in training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import segany.train.loop as loop
from segany.data.masks import tight_boxes
from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
from segany.errors import InputError
from segany.models import build_sam
from segany.train import TrainConfig
from segany.train.crops import CROP_FRACTIONS, MIN_CROP_PIXELS, MIN_CROP_SIDE, zoom_crop
from tests.helpers import TINY


def test_a_crop_is_a_square_window_with_the_visible_instances() -> None:
    scenes = SceneDataset(6, EVAL_BASE_SEED)
    for i in range(len(scenes)):
        scene = scenes[i]
        crop = zoom_crop(scene, np.random.default_rng(i))
        height, width = scene.image.shape[:2]
        side = crop.image.shape[0]
        assert crop.image.shape == (side, side, 3)
        low = max(MIN_CROP_SIDE, int(CROP_FRACTIONS[0] * max(height, width)) - 1)
        assert min(low, height, width) <= side <= min(height, width)
        # the crop's pixels are the scene's at some offset; find it, then check the masks
        found = [
            (y, x)
            for y in range(height - side + 1)
            for x in range(width - side + 1)
            if np.array_equal(scene.image[y, x], crop.image[0, 0])
            and np.array_equal(scene.image[y : y + side, x : x + side], crop.image)
        ]
        assert found
        y0, x0 = found[0]
        window = scene.masks[:, y0 : y0 + side, x0 : x0 + side]
        kept = [m for m in window if m.sum() >= MIN_CROP_PIXELS]
        assert len(crop.masks) == len(kept) >= 1
        assert all(np.array_equal(a, b) for a, b in zip(crop.masks, kept, strict=True))
        assert np.array_equal(crop.boxes, tight_boxes(torch.from_numpy(crop.masks)).numpy())
        assert len(crop.kinds) == len(crop.masks) == len(crop.parent)
        for index, parent in enumerate(crop.parent):  # parts stay inside their parents
            assert -1 <= parent < index
            if parent >= 0:
                assert not (crop.masks[index] & ~crop.masks[parent]).any()


def test_training_scenes_are_cropped_at_the_configured_share() -> None:
    torch.manual_seed(0)
    model = build_sam(TINY)
    config = TrainConfig(images_per_step=16, zoom_crops=0.5)
    sizes = [s.image.shape[-1] for s in loop.step_scenes(0, config, model)]
    again = [s.image.shape[-1] for s in loop.step_scenes(0, config, model)]
    assert sizes == again  # the same step draws the same crops (resume is exact)
    plain = loop.step_scenes(0, TrainConfig(images_per_step=16), model)
    changed = sum(
        not torch.equal(a.masks, b.masks)
        for a, b in zip(loop.step_scenes(0, config, model), plain, strict=True)
    )
    assert 3 <= changed <= 13  # about half of 16
    with pytest.raises(InputError, match="zoom_crops"):
        TrainConfig(zoom_crops=1.5)
