"""A box's own cut (GraphCut.cut_box) and the box-cut ranker that weighs it against the
decoder's masks: the cut, the candidates, the staged predictor's answer, the training examples."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import segany
from segany import refine
from segany.data.masks import box_fill
from segany.data.scenes import SceneConfig, generate_scene
from segany.eval.promptable import prompt_boxes
from segany.models import build_sam
from segany.refine import Stages
from segany.refine.graph_cut import GraphCut
from segany.refine.ranker import (
    BOX_CUT_SLOT,
    BOX_FEATURES,
    NUM_FEATURES,
    MaskRanker,
    RankerConfig,
    box_cut_candidates,
    ranking_features,
    with_box_cut,
)
from segany.refine.train_ranker import (
    RankerTrainConfig,
    box_examples,
    collect_ranking_examples,
    fit_ranker,
)
from segany.weights import save_state_dict_file
from tests.helpers import TINY
from tests.refine.test_graph_cut import _disk_scene, _iou
from tests.refine.test_ranker import _predictors_on


def test_box_fill_is_inclusive_and_clipped_to_the_image() -> None:
    filled = box_fill(np.array([2.0, 1.0, 4.0, 3.0]), (6, 8))
    assert filled.sum() == 9 and filled[1, 2] and filled[3, 4] and not filled[4, 4]
    outside = box_fill(np.array([-3.0, -2.0, 1.0, 1.0]), (6, 8))  # (negatives don't wrap)
    assert outside.sum() == 4 and outside[:2, :2].all()
    assert not box_fill(np.array([-9.0, -9.0, -5.0, -5.0]), (6, 8)).any()


def test_a_box_alone_cuts_the_object_inside_it() -> None:
    image, disk = _disk_scene()
    box = np.array([50.0, 30.0, 110.0, 90.0])  # the disk's tight box
    seed, cut = GraphCut().cut_box(image, box)
    np.testing.assert_array_equal(seed, box_fill(box, disk.shape))
    assert _iou(seed, disk) < 0.8 < 0.95 < _iou(cut, disk)
    pad = GraphCut().pad  # the cut keeps to the box (no margin): only its pad around it
    assert not cut[:, : 50 - pad].any() and not cut[:, 111 + pad :].any()
    # a looser box: still the disk (its corners are background the colour model sees)
    _, loose = GraphCut().cut_box(image, np.array([40.0, 20.0, 120.0, 100.0]))
    assert _iou(loose, disk) > 0.9


def test_with_box_cut_replaces_the_second_candidate_and_keeps_its_inputs() -> None:
    raw = np.zeros((3, 4, 4), dtype=bool)
    snapped = raw.copy()
    seed, cut = np.ones((4, 4), dtype=bool), np.eye(4, dtype=bool)
    new_raw, new_snapped = with_box_cut(raw, snapped, seed, cut)
    assert BOX_CUT_SLOT == 1
    np.testing.assert_array_equal(new_raw[1], seed)
    np.testing.assert_array_equal(new_snapped[1], cut)
    assert not new_raw[[0, 2]].any() and not new_snapped[[0, 2]].any()
    assert not raw.any() and not snapped.any()  # the inputs are left as they were


def test_predictor_answers_a_box_with_its_own_cut_under_a_box_cut_ranker() -> None:
    """With a box-cut ranker, a box alone (one or many) is answered by the decoder's first
    and third masks, snapped, and the box's own cut second, scored by the ranker as it
    reads them (the filled box as the cut's mask before the cut); prompts with clicks
    keep the click ranker and the decoder's masks."""
    torch.manual_seed(0)
    random = build_sam(TINY)
    torch.manual_seed(1)
    box_cut = MaskRanker(RankerConfig(8, kind="box_cut"))
    clicks, boxes = MaskRanker(RankerConfig(8)), MaskRanker(RankerConfig(8, kind="boxes"))
    with pytest.raises(ValueError, match="pass it as box_ranker"):
        Stages(ranker=box_cut)
    image, _ = _disk_scene()
    box, point, label = np.array([50.0, 30.0, 110.0, 90.0]), np.array([[80.0, 60.0]]), [1]
    plain, cut, old = _predictors_on(image, random, clicks, box_cut, boxes)
    many = np.stack([box, box + 8])
    raw, answer, before = plain.predict(box=many), cut.predict(box=many), old.predict(box=many)
    for b, given in enumerate(many):
        seed, own = GraphCut().cut_box(image, given)
        np.testing.assert_array_equal(answer.masks[b, BOX_CUT_SLOT], own)
        np.testing.assert_array_equal(answer.masks[b, [0, 2]], before.masks[b, [0, 2]])
        read = with_box_cut(raw.masks[b], answer.masks[b], seed, own)
        want = box_cut.rank(raw.scores[b], read[0], read[1], given)
        np.testing.assert_allclose(answer.scores[b], want, rtol=1e-6)
    np.testing.assert_array_equal(answer.low_res_logits, raw.low_res_logits)
    single = cut.predict(box=box)
    np.testing.assert_array_equal(single.masks, answer.masks[0])
    with_clicks = {"box": box, "points": point, "labels": label}
    np.testing.assert_array_equal(
        cut.predict(**with_clicks).masks,  # type: ignore[arg-type]
        old.predict(**with_clicks).masks,  # type: ignore[arg-type]
    )


def test_box_cut_examples_read_the_cut_and_fit_a_box_cut_ranker(tmp_path) -> None:
    torch.manual_seed(0)
    scene = generate_scene(3, SceneConfig(size=(64, 80), min_objects=2, max_objects=3))
    predictor = segany.Predictor(build_sam(TINY), cache_size=0)
    predictor.set_image(scene.image)
    rng = np.random.default_rng(4)
    examples = list(box_examples(predictor, GraphCut(), scene, rng, box_cut=True))
    assert len(examples) == 2 * len(scene.masks)
    tight, _ = prompt_boxes(scene, np.random.default_rng(4))
    three = predictor.predict(box=tight, multimask=True)
    snapped = np.stack([GraphCut()(scene.image, m, box=tight[0]) for m in three.masks[0]])
    seed, own = GraphCut().cut_box(scene.image, tight[0])
    read = with_box_cut(three.masks[0], snapped, seed, own)
    want = ranking_features(three.scores[0], *read, tight[0])
    np.testing.assert_allclose(examples[0][0], want, rtol=1e-5)
    truth = scene.masks[0].astype(bool)
    assert examples[0][1][BOX_CUT_SLOT] == pytest.approx(_iou(own, truth) if own.any() else 0.0)

    scenes: Any = [scene]
    x, y = collect_ranking_examples(
        predictor, GraphCut(), scenes, progress=False, prompts="box_cut"
    )
    assert x.shape == (2 * len(scene.masks), NUM_FEATURES + BOX_FEATURES) and y.shape[1] == 3
    ranker = fit_ranker(x, y, RankerTrainConfig(epochs=1, hidden=4, prompts="box_cut"))
    assert ranker.config.kind == "box_cut"
    path = tmp_path / "box_ranker.safetensors"
    save_state_dict_file(ranker.export(), path)
    assert refine.load_box_ranker(path=path).config == RankerConfig(hidden=4, kind="box_cut")
    with pytest.raises(segany.errors.CheckpointError, match="it is a 'box_cut' ranker"):
        refine.load_ranker(path=path)


def test_a_box_s_cuts_on_threads_equal_its_cuts_one_by_one() -> None:
    image, disk = _disk_scene(2)
    masks = np.zeros((3, *disk.shape), dtype=bool)
    masks[0, 40:80, 60:100] = True
    masks[1, 35:85, 55:105] = True
    masks[2, 45:75, 65:95] = True
    box = np.array([50.0, 30.0, 110.0, 90.0])
    one = box_cut_candidates(GraphCut(), image, masks, box)
    for threads in (2, 3):
        many = box_cut_candidates(GraphCut(), image, masks, box, threads)
        for a, b in zip(one, many, strict=True):
            np.testing.assert_array_equal(a, b)
    assert _iou(one[1][0], disk) > 0.9 and not np.array_equal(one[1][0], masks[0])
