"""The simulated annotator: SAM's click protocol (centre first, then the centre of the
larger error region), acceptance at IoU 0.9, giving up after 5 clicks, the model's mask
kept, and a decoder over a predictor's click session."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from segany.data.masks import binary_iou, interior_point
from segany.eval.annotator import (
    ACCEPT_IOU,
    MAX_CLICKS,
    Annotation,
    SessionDecoder,
    annotate_image,
    annotate_object,
    annotate_scene,
    summarize_annotations,
)
from segany.predictor import Prediction


def _rect(y0: int, y1: int, x0: int, x1: int, shape: tuple[int, int] = (60, 80)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


TRUTH = _rect(10, 30, 10, 50)  # 20 rows x 40 columns


class Scripted:
    """A fake model answering the k-th click with ``answers[k - 1]`` (the last one after)."""

    def __init__(self, *answers: np.ndarray) -> None:
        self.answers = answers
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []

    def __call__(self, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
        self.calls.append((points.copy(), labels.copy()))
        return self.answers[min(len(points), len(self.answers)) - 1]


def _near_truth() -> np.ndarray:
    """TRUTH without its last two columns: IoU 0.95, not the ground truth itself."""
    return _rect(10, 30, 10, 48)


@pytest.mark.parametrize("k", range(1, MAX_CLICKS + 1))
def test_accepts_the_models_mask_after_k_clicks(k: int) -> None:
    wrong = _rect(0, 5, 0, 5)
    good = _near_truth()
    decode = Scripted(*([wrong] * (k - 1)), good)
    annotation = annotate_object(decode, TRUTH)
    assert annotation.accepted and annotation.clicks == k == len(decode.calls)
    assert annotation.mask is good, "the model's mask is kept, never the ground truth"
    assert annotation.iou == pytest.approx(binary_iou(good, TRUTH)) and annotation.iou < 1
    assert [len(points) for points, _ in decode.calls] == list(range(1, k + 1))
    assert annotation.points.shape == (k, 2) and annotation.labels.shape == (k,)


def test_gives_up_after_five_clicks() -> None:
    decode = Scripted(_rect(0, 5, 0, 5))
    annotation = annotate_object(decode, TRUTH)
    assert not annotation.accepted and annotation.clicks == MAX_CLICKS == len(decode.calls)
    assert annotation.iou == 0.0 and annotation.mask is decode.answers[0]
    assert not annotate_object(Scripted(_rect(0, 5, 0, 5)), TRUTH, max_clicks=2).accepted
    with pytest.raises(ValueError, match="max_clicks"):
        annotate_object(decode, TRUTH, max_clicks=0)
    with pytest.raises(ValueError, match="empty"):
        annotate_object(decode, np.zeros((60, 80), dtype=bool))


def test_accepts_at_exactly_the_threshold() -> None:
    truth = _rect(0, 10, 0, 10)  # 100 pixels
    ninety = truth.copy()
    ninety[9, :] = False  # 90 of them: IoU 0.90
    eighty_nine = ninety.copy()
    eighty_nine[8, 0] = False  # IoU 0.89
    assert ACCEPT_IOU == 0.9
    assert annotate_object(Scripted(ninety), truth).clicks == 1
    late = annotate_object(Scripted(eighty_nine, eighty_nine, ninety), truth)
    assert late.accepted and late.clicks == 3
    strict = annotate_object(Scripted(ninety), truth, accept_iou=0.95)
    assert not strict.accepted and strict.clicks == MAX_CLICKS


def test_clicks_follow_the_centre_of_the_larger_error_region() -> None:
    left_half = _rect(10, 30, 10, 30)  # misses TRUTH's right half (20x20 pixels)
    spill = TRUTH | _rect(40, 58, 50, 78)  # all of TRUTH plus a larger 18x28 region outside
    decode = Scripted(left_half, spill, _near_truth())
    annotation = annotate_object(decode, TRUTH)
    assert annotation.accepted and annotation.clicks == 3
    points, labels = annotation.points, annotation.labels
    assert tuple(points[0]) == interior_point(TRUTH) and labels[0] == 1, "first: the centre"
    assert 10 <= points[0][1] <= 30 and 10 <= points[0][0] <= 50
    # second: positive, at the centre of the missed right half (rows 10-29, columns 30-49)
    assert labels[1] == 1
    assert points[1] == pytest.approx((40.0, 20.0), abs=1.0)
    # third: negative, at the centre of the wrongly included region (rows 40-57, cols 50-77)
    assert labels[2] == 0
    assert points[2] == pytest.approx((64.0, 49.0), abs=1.0)
    assert np.array_equal(decode.calls[-1][0], points) and list(decode.calls[-1][1]) == [1, 1, 0]


def test_annotate_scene_and_the_summary() -> None:
    other = _rect(40, 55, 5, 25)
    near_other = _rect(40, 55, 5, 24)
    hopeless = Scripted(_rect(0, 2, 0, 2))
    annotations = annotate_scene(Scripted(_near_truth()), [TRUTH, other])
    assert [a.accepted for a in annotations] == [True, False], "the fake only knows TRUTH"
    good_other = annotate_object(Scripted(_rect(0, 2, 0, 2), near_other), other)
    summary = summarize_annotations([*annotations, good_other, annotate_object(hopeless, TRUTH)])
    assert summary["objects"] == 4 and summary["accepted"] == 2
    assert summary["acceptance_rate"] == 0.5
    assert summary["clicks_per_accepted"] == 1.5  # 1 and 2 clicks
    assert summary["clicks_per_object"] == (1 + 5 + 2 + 5) / 4
    ious = [a.iou for a in [*annotations, good_other]] + [0.0]
    assert summary["mean_iou"] == pytest.approx(float(np.mean(ious)))
    empty = summarize_annotations([])
    assert empty["objects"] == 0 and math.isnan(empty["clicks_per_accepted"])


class FakePredictor:
    """Answers every prompt with 3 masks: the mask of its clicks' box, two empty ones."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def set_image(self, image: np.ndarray) -> None:
        self.shape = image.shape[:2]

    def predict(
        self,
        points: Any = None,
        labels: Any = None,
        box: Any = None,
        mask_input: Any = None,
        multimask: bool = True,
        return_logits: bool = False,
    ) -> Prediction:
        self.calls.append({"points": np.array(points), "mask_input": mask_input})
        xs, ys = np.array(points)[:, 0], np.array(points)[:, 1]
        best = np.zeros(self.shape, dtype=bool)
        best[int(ys.min()) - 3 : int(ys.max()) + 4, int(xs.min()) - 3 : int(xs.max()) + 4] = True
        masks = np.stack([best, np.zeros_like(best), np.zeros_like(best)])
        logits = np.full((3, 16, 16), float(len(self.calls)), dtype=np.float32)
        return Prediction(masks, np.array([0.9, 0.1, 0.1]), logits)


def test_session_decoder_continues_a_session_and_restarts_for_a_new_object() -> None:
    predictor = FakePredictor()
    predictor.set_image(np.zeros((60, 80, 3), dtype=np.uint8))
    decode = SessionDecoder(predictor)
    first = decode(np.array([[20.5, 20.5]]), np.array([1]))
    assert first.sum() == 7 * 7 and predictor.calls[-1]["mask_input"] is None
    decode(np.array([[20.5, 20.5], [30.5, 20.5]]), np.array([1, 1]))
    assert len(predictor.calls) == 2, "one decode per click"
    assert predictor.calls[-1]["mask_input"] is not None, "the previous logits fed back"
    assert float(predictor.calls[-1]["mask_input"].max()) == 1.0
    decode(np.array([[50.5, 40.5]]), np.array([1]))  # a new object
    assert len(predictor.calls) == 3 and predictor.calls[-1]["mask_input"] is None
    decode(np.array([[5.5, 5.5], [9.5, 9.5]]), np.array([1, 0]))  # not a continuation: replay
    assert len(predictor.calls) == 5 and predictor.calls[-2]["mask_input"] is None


def test_annotate_image_with_the_bundled_predictor() -> None:
    import segany
    from segany.data import EVAL_BASE_SEED, SceneConfig, generate_scene, scene_seed

    scene = generate_scene(scene_seed(EVAL_BASE_SEED, 0), SceneConfig(domain="shifted"))
    predictor = segany.Predictor(segany.load_model(), cache_size=0)
    annotations = annotate_image(predictor, scene.image, scene.masks[:3])
    assert len(annotations) == 3
    for annotation, truth in zip(annotations, scene.masks, strict=False):
        assert isinstance(annotation, Annotation) and 1 <= annotation.clicks <= MAX_CLICKS
        assert annotation.mask.shape == truth.shape
        assert annotation.iou == pytest.approx(binary_iou(annotation.mask, truth))
        assert annotation.accepted == (annotation.iou >= ACCEPT_IOU)
        assert annotation.accepted or annotation.clicks == MAX_CLICKS
