"""Predictor behaviour on a tiny random model: shapes, input conversion, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import segany
from segany.errors import InputError
from segany.models import build_sam
from tests.helpers import TINY


@pytest.fixture(scope="module")
def predictor() -> segany.Predictor:
    pred = segany.Predictor(build_sam(TINY))
    pred.set_image(np.full((30, 50, 3), 128, np.uint8))
    return pred


def test_predict_before_set_image() -> None:
    with pytest.raises(RuntimeError, match="set_image"):
        segany.Predictor(build_sam(TINY)).predict(points=[[1, 1]], labels=[1])


def test_shapes(predictor: segany.Predictor) -> None:
    low = 4 * TINY.embedding_size
    one = predictor.predict(points=[[10, 10]], labels=[1])
    assert one.masks.shape == (3, 30, 50) and one.masks.dtype == bool
    assert one.scores.shape == (3,) and one.low_res_logits.shape == (3, low, low)
    single = predictor.predict(box=[0, 0, 20, 20], multimask=False)
    assert single.masks.shape == (1, 30, 50)
    many = predictor.predict(box=[[0, 0, 20, 20], [5, 5, 40, 25], [1, 1, 2, 2]])
    assert many.masks.shape == (3, 3, 30, 50) and many.scores.shape == (3, 3)
    logits = predictor.predict(points=[[10, 10]], labels=[1], return_logits=True)
    assert logits.masks.dtype == np.float32
    refined = predictor.predict(mask_input=one.low_res_logits[:1])
    assert refined.masks.shape == (3, 30, 50)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "at least one prompt"),
        ({"points": [[1, 1]]}, "together"),
        ({"labels": [1]}, "together"),
        ({"points": [[1, 1], [2, 2]], "labels": [1]}, "2 points but 1 labels"),
        ({"points": [[1, 1]], "labels": [5]}, "labels must be 1"),
        ({"points": [[60, 1]], "labels": [1]}, "outside the 50x30 image"),
        ({"points": [[-1, 1]], "labels": [1]}, "outside"),
        ({"points": [[np.nan, 1]], "labels": [1]}, "finite"),
        ({"points": [[1, 2, 3]], "labels": [1]}, "Nx2"),
        ({"points": "ab", "labels": [1]}, "numbers"),
        ({"box": [10, 10, 5, 20]}, "x1 >= x0"),
        ({"box": [0, 0, 60, 20]}, "outside"),
        ({"box": [1, 2, 3]}, "x0, y0, x1, y1"),
        ({"mask_input": np.zeros((1, 8, 8))}, "mask_input must be"),
    ],
)
def test_bad_prompts(predictor: segany.Predictor, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        predictor.predict(**kwargs)


def test_image_conversions(tmp_path) -> None:
    pred = segany.Predictor(build_sam(TINY))
    gray = np.full((20, 24), 90, np.uint8)
    pred.set_image(gray)
    assert pred.original_size == (20, 24)
    rgba = np.zeros((20, 24, 4), np.uint8)
    pred.set_image(rgba)
    path = tmp_path / "x.png"
    Image.fromarray(gray).save(path)
    pred.set_image(path)
    pred.set_image(Image.open(path))
    assert pred.predict(points=[[3, 3]], labels=[1]).masks.shape == (3, 20, 24)
    with pytest.raises(InputError):
        pred.set_image(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(InputError):
        pred.set_image(np.zeros((10, 10, 3), np.float32))


def test_rejects_foreign_model() -> None:
    with pytest.raises(TypeError, match="Sam model"):
        segany.Predictor(object())  # type: ignore[arg-type]
