"""Training from recorded annotations: each step's images drawn from records (by step and
seed), exact resume, and a fine-tune of the bundled weights on shifted scenes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import segany
import segany.train.loop as loop
from segany.data import TRAIN_BASE_SEED, SceneConfig, SceneDataset
from segany.errors import InputError
from segany.models import build_sam
from segany.models.sam import Sam
from segany.train import AnnotatedImage, RecordSource, TrainConfig, train
from segany.train.records import mask_boxes
from segany.train.step import train_step
from segany.transforms import ResizeLongestSide
from tests.helpers import TINY

FAST = TrainConfig(
    steps=12, images_per_step=2, prompts_per_image=4, clicks=1, warmup_steps=2, lr=2e-3,
    checkpoint_every=4, log_every=2, bf16=False, focal_from_step=0, focal_ramp_steps=0,
    easy_steps=0, clicks_from_step=0,
)  # fmt: skip


def _records(count: int, shape: tuple[int, int] = (48, 64), seed: int = 0) -> list[AnnotatedImage]:
    """Random images, each with 1 to 3 random rectangles as its masks."""
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(count):
        image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        masks = np.zeros((int(rng.integers(1, 4)), *shape), dtype=bool)
        for mask in masks:
            y0, x0 = int(rng.integers(0, shape[0] - 12)), int(rng.integers(0, shape[1] - 12))
            mask[y0 : y0 + int(rng.integers(8, 12)), x0 : x0 + int(rng.integers(8, 12))] = True
            image[mask] = rng.integers(0, 256, 3, dtype=np.uint8)
        records.append(AnnotatedImage(image, masks))
    return records


def _fresh() -> Sam:
    torch.manual_seed(0)
    return build_sam(TINY)


def test_steps_draw_records_by_step_and_seed_with_replacement() -> None:
    records = _records(3)
    source = RecordSource(records, image_size=64, low_res=16, images_per_step=4, seed=5)
    again = RecordSource(records, image_size=64, low_res=16, images_per_step=4, seed=5)
    other = RecordSource(records, image_size=64, low_res=16, images_per_step=4, seed=6)
    draws = [source.indices(step) for step in range(20)]
    assert draws == [again.indices(step) for step in range(20)]
    assert draws != [other.indices(step) for step in range(20)]
    assert len({tuple(d) for d in draws}) > 1, "steps differ"
    assert {i for d in draws for i in d} == {0, 1, 2}
    assert all(len(d) == 4 for d in draws), "4 of 3 records: drawn with replacement"
    first = source(7)
    assert [id(t) for t in first] == [id(t) for t in source(7)], "tensors computed once"
    index = source.indices(7)[0]
    record, tensors = records[index], first[0]
    assert tensors.regions is None and tensors.masks.shape == (len(record.masks), 16, 16)
    expected = ResizeLongestSide(64).apply_boxes(mask_boxes(record.masks), (48, 64))
    assert torch.allclose(tensors.boxes, torch.from_numpy(expected).float())
    assert tuple(tensors.image.shape) == (3, 48, 64)


def test_mask_boxes_are_tight_with_inclusive_maxima() -> None:
    masks = np.zeros((2, 10, 12), dtype=bool)
    masks[0, 2:5, 3:9] = True
    masks[1, 7, 11] = True
    assert mask_boxes(masks).tolist() == [[3, 2, 8, 4], [11, 7, 11, 7]]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], "at least one"),
        ([AnnotatedImage(np.zeros((8, 8, 3), np.uint8), np.zeros((0, 8, 8), bool))], "no masks"),
        ([AnnotatedImage(np.zeros((8, 8, 3), np.uint8), np.zeros((1, 8, 8), bool))], "empty"),
        ([AnnotatedImage(np.zeros((8, 8, 3), np.uint8), np.ones((1, 8, 9), bool))], "size"),
        ([AnnotatedImage(np.zeros((8, 8), np.uint8), np.ones((1, 8, 8), bool))], "HxWx3"),
    ],
)
def test_bad_records_are_refused(records: list[AnnotatedImage], message: str) -> None:
    with pytest.raises(InputError, match=message):
        RecordSource(records, image_size=64, low_res=16, images_per_step=1)


def test_training_on_records_resumes_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = _records(5)
    straight = _fresh()
    source = RecordSource.for_model(records, straight, FAST)
    train(FAST, tmp_path / "a", progress=False, model=straight, scenes=source)

    calls = {"n": 0}
    real_step = loop.train_step

    def dies_at_step_7(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", dies_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        train(FAST, tmp_path / "b", progress=False, model=_fresh(), scenes=source)
    monkeypatch.setattr(loop, "train_step", real_step)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["step"] == 4
    resumed = _fresh()
    fresh_source = RecordSource.for_model(records, resumed, FAST)  # a new process's source
    train(FAST, tmp_path / "b", resume=True, progress=False, model=resumed, scenes=fresh_source)
    for key, value in straight.state_dict().items():
        assert torch.allclose(value, resumed.state_dict()[key], atol=1e-6), key
    generated = _fresh()
    train(FAST, tmp_path / "c", progress=False, model=generated)
    assert any(
        not torch.allclose(value, generated.state_dict()[key])
        for key, value in straight.state_dict().items()
    ), "the records, not generated scenes, were trained on"


@pytest.mark.slow
def test_fine_tuning_the_bundled_model_on_shifted_records(tmp_path: Path) -> None:
    """20 steps of the whole model on two shifted scenes' masks: the loss on a fixed set of
    prompts falls and the weights are written (about 15 s on one core). Decoder-only steps
    lower it far less (docs/data_engine.md): the shift is in what the encoder sees."""
    scenes = SceneDataset(2, TRAIN_BASE_SEED, SceneConfig(domain="shifted", size=(256, 256)))
    records = [AnnotatedImage(scenes[i].image, scenes[i].masks) for i in range(len(scenes))]
    config = TrainConfig(
        steps=20, images_per_step=1, prompts_per_image=8, clicks=0, lr=3e-4, warmup_steps=2,
        decay_fraction=0.0, easy_steps=0, focal_from_step=0, focal_ramp_steps=0,
        decoder_warmup_steps=0, attention_gain=0.0, trainable="all", bf16=False,
        log_every=5, checkpoint_every=10,
    )  # fmt: skip
    model = segany.load_model("segany_shapes")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    source = RecordSource.for_model(records, model, config)
    both = [source.tensors(i) for i in range(len(records))]

    def fixed_loss() -> float:  # the same prompts on both images, before and after
        model.train()
        loop.freeze(model, config.trainable)
        with torch.no_grad():
            generator = torch.Generator().manual_seed(7)
            return float(train_step(model, both, config, generator, config.steps)[0])

    start = fixed_loss()
    train(config, tmp_path, progress=False, model=model, scenes=source)
    assert fixed_loss() < 0.9 * start
    log = [json.loads(line) for line in (tmp_path / loop.LOG).read_text().splitlines()]
    assert [row["step"] for row in log] == [5, 10, 15, 20]
    written = segany.load_model(checkpoint=tmp_path / loop.FINAL)
    moved = {k for k, v in written.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("image_encoder.") for k in moved)
    assert any(k.startswith("mask_decoder.") for k in moved)
