"""Clicks answered on zoomed crops (segany.refine.zoom): crop geometry, logits moved between
frames, and the staged predictor's choice among the whole image and its crops."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import segany
from segany import engine
from segany.errors import InputError
from segany.models import build_sam
from segany.refine import StagedPredictor, Stages, get_stage_spec, registered_stages
from segany.refine.zoom import OUTSIDE, ClickZoom, Frame, frame_of, resample_logits
from tests.helpers import TINY

ZOOM = ClickZoom(windows=(0.5, 0.25), min_side=16)


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (120, 160, 3), dtype=np.uint8)
    image[40:60, 30:52] = (200, 40, 40)  # a small object
    return image


def _staged(model: segany.models.Sam, stages: Stages) -> StagedPredictor:
    return StagedPredictor(segany.Predictor(model), stages)


@pytest.fixture(scope="module")
def model() -> segany.models.Sam:
    torch.manual_seed(0)
    return build_sam(TINY).eval()


def test_zoom_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="fractions"):
        ClickZoom(windows=(0.5, 1.0))
    with pytest.raises(ValueError, match="fractions"):
        ClickZoom(windows=())
    with pytest.raises(ValueError, match="grid"):
        ClickZoom(grid=0.0)


def test_crops_hold_the_clicks_on_a_grid() -> None:
    positive = np.array([1])
    crops = ZOOM.crops((120, 160), np.array([[66.0, 47.0]]), positive)
    assert [x1 - x0 for x0, _, x1, _ in crops] == [80, 40]  # half and a quarter of 160
    for x0, y0, x1, y1 in crops:
        side = x1 - x0
        assert y1 - y0 == side and x0 % (side // 4) == 0 and y0 % (side // 4) == 0
        assert x0 + side * 3 / 8 <= 66 <= x0 + side * 5 / 8  # near the centre
        assert y0 + side * 3 / 8 <= 47 <= y0 + side * 5 / 8
    # a click a few pixels away shares the crops (and so their encodings)
    assert ZOOM.crops((120, 160), np.array([[67.0, 48.0]]), positive) == crops
    # at the border the crop is moved inside the image
    corner = ZOOM.crops((120, 160), np.array([[2.0, 118.0]]), positive)
    assert corner == [(0, 40, 80, 120), (0, 80, 40, 120)]


def test_crops_skip_what_shows_nothing_new() -> None:
    points, labels = np.array([[20.0, 20.0], [60.0, 20.0]]), np.array([1, 1])
    # positive clicks 40 px apart do not fit the 40 px crop (a quarter side from its edges)
    assert [x1 - x0 for x0, _, x1, _ in ZOOM.crops((120, 160), points, labels)] == [80]
    # a negative click does not count
    assert len(ZOOM.crops((120, 160), points, np.array([1, 0]))) == 2
    assert ZOOM.crops((120, 160), points, np.array([0, 0])) == []
    # crops are at least min_side: on a small image that is the whole image, so none
    assert ClickZoom(min_side=96).crops((100, 100), points[:1], labels[:1]) == []


def test_resample_logits_between_frames() -> None:
    cells = 16
    ramp = torch.arange(cells, dtype=torch.float32).repeat(cells, 1)  # value = x cell
    whole = frame_of((0, 0, 64, 48), cells)  # 4 px a cell
    assert whole == Frame((0.0, 0.0), 4.0)
    same = resample_logits(ramp[None, None], whole, whole)
    torch.testing.assert_close(same, ramp[None, None])
    crop = frame_of((16, 8, 48, 40), cells)  # 2 px a cell, from x = 16 px (cell 4 of whole)
    zoomed = resample_logits(ramp[None, None], whole, crop)[0, 0]
    expected = 4 + (torch.arange(cells) + 0.5) / 2 - 0.5  # the ramp seen at twice the scale
    torch.testing.assert_close(zoomed[5, 1:-1], expected[1:-1])
    back = resample_logits(zoomed[None, None], crop, whole)[0, 0]
    torch.testing.assert_close(back[2:10, 5:11], ramp[2:10, 5:11])  # inside the crop
    assert torch.all(back[:, :3] == OUTSIDE) and torch.all(back[:, 13:] == OUTSIDE)


def test_predictor_keeps_the_best_scored_answer(model: segany.models.Sam) -> None:
    zoomed = _staged(model, Stages(zoom=ZOOM))
    plain = segany.Predictor(model)
    image = _image()
    zoomed.set_image(image)
    plain.set_image(image)
    click: dict[str, Any] = {"points": [[41.0, 50.0]], "labels": [1]}
    got = zoomed.predict(**click)
    whole = plain.predict(**click)
    answers = [whole]
    prompts = segany.prompts.check_prompts((120, 160), 64, **click)
    assert prompts.points is not None and prompts.labels is not None
    for x0, y0, x1, y1 in ZOOM.crops((120, 160), prompts.points, prompts.labels):
        inside = segany.prompts.Prompts(
            prompts.points - [x0, y0], prompts.labels, None, None, False
        )
        with zoomed.viewing(*zoomed.crop((x0, y0, x1, y1))):
            answer = zoomed.answer(inside, multimask=True)
        masks = np.zeros((3, 120, 160), bool)
        masks[:, y0:y1, x0:x1] = answer.masks
        answers.append(segany.predictor.Prediction(masks, answer.scores, answer.low_res_logits))
    best = max(answers, key=lambda a: a.scores.max())
    np.testing.assert_array_equal(got.masks, best.masks)
    np.testing.assert_array_equal(got.scores, best.scores)
    assert got.scores.max() >= whole.scores.max()
    assert got.low_res_logits.shape == whole.low_res_logits.shape  # the whole image's frame
    # passed back, the logits are resampled into each crop: a corrective click works
    again = zoomed.predict(
        points=[[41.0, 50.0], [5.0, 5.0]], labels=[1, 0], mask_input=got.low_res_logits[:1]
    )
    assert again.masks.shape == (3, 120, 160)


def test_crop_encodings_are_kept(model: segany.models.Sam, monkeypatch: pytest.MonkeyPatch) -> None:
    zoomed = _staged(model, Stages(zoom=ZOOM))
    calls = []
    encode = engine.encode

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return encode(*args, **kwargs)

    monkeypatch.setattr(engine, "encode", counting)
    zoomed.set_image(_image())
    assert len(calls) == 1
    zoomed.predict(points=[[66.0, 47.0]], labels=[1])
    assert len(calls) == 3  # the image and its two crops
    zoomed.predict(points=[[67.0, 48.0]], labels=[1])
    assert len(calls) == 3  # a click close by: the same crops
    zoomed.predict(points=[[130.0, 20.0]], labels=[1])
    assert len(calls) == 5


def test_boxes_and_logits_are_not_zoomed(model: segany.models.Sam) -> None:
    zoomed = _staged(model, Stages(zoom=ZOOM))
    plain = segany.Predictor(model)
    for predictor in (zoomed, plain):
        predictor.set_image(_image())
    box = np.array([25.0, 35.0, 60.0, 65.0])
    cases: tuple[dict[str, Any], ...] = (
        {"box": box},
        {"box": box, "points": [[41.0, 50.0]], "labels": [1]},
        {"points": [[41.0, 50.0]], "labels": [1], "return_logits": True},
    )
    for kwargs in cases:
        a, b = zoomed.predict(**kwargs), plain.predict(**kwargs)
        np.testing.assert_array_equal(a.masks, b.masks)
    unset = _staged(model, Stages(zoom=ZOOM))
    with pytest.raises(RuntimeError, match="An image must be set"):
        unset.crop((0, 0, 40, 40))


def test_zoom_is_registered_for_the_bundled_model(model: segany.models.Sam) -> None:
    with pytest.raises(InputError, match="no mask stages are registered"):
        registered_stages(model)  # random weights: nothing registered
    bundled = registered_stages(segany.load_model("segany_shapes"))
    spec = get_stage_spec("segany_shapes")
    assert spec is not None and bundled.zoom == ClickZoom(windows=spec.zoom)
    assert bundled.without("zoom").zoom is None
    with pytest.raises(ValueError, match="zoom must be a ClickZoom or None"):
        Stages(zoom="on")  # type: ignore[arg-type]
