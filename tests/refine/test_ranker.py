"""The ranker of a click's snapped masks: its features, its file, its fit, the staged
predictor."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import segany
from segany import refine
from segany.data.scenes import SceneConfig, generate_scene
from segany.errors import CheckpointError, InputError
from segany.eval.promptable import prompt_boxes
from segany.models import build_sam
from segany.refine import StagedPredictor, Stages, registered_stages
from segany.refine.graph_cut import GraphCut
from segany.refine.ranker import (
    BOX_FEATURES,
    BOX_KINDS,
    CLICK_FEATURES,
    NUM_FEATURES,
    RANKER_KINDS,
    MaskRanker,
    RankerConfig,
    box_features,
    click_features,
    ranking_features,
)
from segany.refine.refiner import MaskRefiner
from segany.refine.train_ranker import (
    RankerTrainConfig,
    box_examples,
    collect_ranking_examples,
    fit_ranker,
    object_examples,
)
from segany.weights import save_state_dict_file
from tests.helpers import TINY
from tests.refine.test_graph_cut import _disk_scene


def _squares() -> tuple[np.ndarray, np.ndarray]:
    """Raw and snapped 3x20x20 masks with known areas and overlaps."""
    raw = np.zeros((3, 20, 20), dtype=bool)
    raw[0, :10, :10] = True  # 100 px
    raw[1, :10, :] = True  # 200 px
    raw[2, :, :] = True  # 400 px
    snapped = raw.copy()
    snapped[2, 10:, :] = False  # 200 px: now equal to mask 1
    return raw, snapped


def test_features_describe_the_cut_and_the_overlaps() -> None:
    raw, snapped = _squares()
    scores = np.array([0.9, 0.5, 0.1])
    f = ranking_features(scores, raw, snapped)
    assert f.shape == (NUM_FEATURES,) and f.dtype == np.float32
    np.testing.assert_allclose(f[:3], scores)
    np.testing.assert_allclose(f[3:6], [1.0, 1.0, 0.5])  # how far the cut moved each mask
    np.testing.assert_allclose(np.exp(f[6:9]), [0.25, 0.5, 0.5], rtol=1e-4)  # snapped area
    np.testing.assert_allclose(np.exp(f[9:12]), [0.25, 0.5, 1.0], rtol=1e-4)  # raw area
    np.testing.assert_allclose(np.exp(f[12:15]), [1.0, 1.0, 201 / 401], rtol=1e-5)
    np.testing.assert_allclose(f[15:], [0.5, 0.5, 1.0])  # snapped pairs 0-1, 0-2, 1-2
    with pytest.raises(ValueError, match="expected 3 scores"):
        ranking_features(scores[:2], raw[:2], snapped[:2])


@pytest.mark.parametrize("kind", RANKER_KINDS)
def test_a_saved_ranker_loads_with_its_width_and_kind_and_gives_the_same_scores(
    tmp_path, kind: str
) -> None:
    torch.manual_seed(0)
    ranker = MaskRanker(RankerConfig(hidden=8, kind=kind)).eval()
    ranker.mean.normal_()
    path = tmp_path / "ranker.safetensors"
    save_state_dict_file(ranker.export(), path)
    boxes = kind in BOX_KINDS
    load = refine.load_box_ranker if boxes else refine.load_ranker
    loaded = load(path=path)
    assert loaded.config == RankerConfig(hidden=8, kind=kind)
    raw, snapped = _squares()
    scores = np.array([0.2, 0.3, 0.4])
    prompt = {"box": np.array([0.0, 0.0, 9.0, 9.0]), "clicks": (np.array([[3.0, 4.0]]), [1])}
    first, again = (
        ranker.rank(scores, raw, snapped, **prompt),
        loaded.rank(scores, raw, snapped, **prompt),
    )  # type: ignore[arg-type]
    np.testing.assert_array_equal(first, again)
    assert first.shape == (3,) and ((first > 0) & (first < 1)).all()
    other = tmp_path / "refiner.safetensors"
    save_state_dict_file(MaskRefiner().export(), other)
    with pytest.raises(CheckpointError, match="is not a mask ranker"):
        refine.load_ranker(path=other)
    wrong = refine.load_ranker if boxes else refine.load_box_ranker
    with pytest.raises(CheckpointError, match=f"it is a '{kind}' ranker"):
        wrong(path=path)


def test_files_from_before_the_kinds_load_by_their_width(tmp_path) -> None:
    """A ranker file without its ``kind`` (written before 2026-12-05): 18 inputs are a
    mask ranker, 30 a box ranker; a kind that does not fit the width is refused."""
    path = tmp_path / "old.safetensors"
    for kind, load in (("masks", refine.load_ranker), ("boxes", refine.load_box_ranker)):
        tensors = MaskRanker(RankerConfig(hidden=4, kind=kind)).export()
        del tensors["kind"]
        save_state_dict_file(tensors, path)
        assert load(path=path).config == RankerConfig(hidden=4, kind=kind)
    tensors = MaskRanker(RankerConfig(hidden=4, kind="masks")).export()
    tensors["kind"] = torch.tensor([RANKER_KINDS.index("clicks")])
    with pytest.raises(ValueError, match="18 inputs, not the 30 of a 'clicks' ranker"):
        MaskRanker.from_state_dict(tensors)
    tensors["kind"] = torch.tensor([7])
    with pytest.raises(ValueError, match="kind"):
        MaskRanker.from_state_dict(tensors)
    with pytest.raises(ValueError, match="kind must be one of"):
        RankerConfig(kind="lines")


def test_click_features_say_where_the_clicks_sit_in_each_mask() -> None:
    """A positive click at (15, 15) and a negative one at (25, 25), in three masks: a
    square around the first, a larger square that it sits near the edge of (and that
    holds the negative one), and the left half, which holds neither."""
    snapped = np.zeros((3, 30, 30), dtype=bool)
    snapped[0, 10:20, 10:20] = True
    snapped[1, 10:, 10:] = True
    snapped[2, :, :15] = True
    points, labels = np.array([[15.0, 15.0], [25.0, 25.0]]), np.array([1, 0])
    f = click_features(points, labels, snapped).reshape(3, 4)
    assert f[0, 0] > 0.9 and 0.1 < f[1, 0] < 0.5 and f[2, 0] == 0.0  # the click's depth
    np.testing.assert_allclose(f[:, 1], [1.0, 1.0, 0.0])  # the positive click inside
    np.testing.assert_allclose(f[:, 2], [0.0, 1.0, 0.0])  # the negative one inside
    np.testing.assert_allclose(f[0, 3], np.hypot(0.5, 0.5) / 10, atol=1e-6)  # off centre
    assert f[1, 3] > f[0, 3]
    one = click_features(points[:1], labels[:1], snapped).reshape(3, 4)
    np.testing.assert_allclose(one[:, 2], 0.0)  # no negative click: none inside
    empty = click_features(points, labels, np.zeros_like(snapped))
    np.testing.assert_allclose(empty.reshape(3, 4), [[0, 0, 0, 3]] * 3)
    scores = np.array([0.9, 0.5, 0.1])
    both = ranking_features(scores, snapped, snapped, clicks=(points, labels))
    assert both.shape == (NUM_FEATURES + CLICK_FEATURES,)
    np.testing.assert_allclose(both[NUM_FEATURES:], click_features(points, labels, snapped))
    with pytest.raises(ValueError, match="points and N labels"):
        click_features(points, labels[:1], snapped)
    ranker = MaskRanker(RankerConfig(hidden=4))  # a click ranker by default
    with pytest.raises(ValueError, match="give the clicks"):
        ranker.rank(scores, snapped, snapped)


def test_fitting_learns_which_candidate_is_best() -> None:
    """Targets that follow one feature (the cut's agreement), masked by noise features:
    the fitted ranker picks the best candidate far more often than chance."""
    rng = np.random.default_rng(0)

    def examples(n: int) -> tuple[np.ndarray, np.ndarray]:
        features = rng.normal(size=(n, NUM_FEATURES)).astype(np.float32)
        agree = rng.uniform(size=(n, 3)).astype(np.float32)
        features[:, 3:6] = agree
        return features, agree**2

    x, y = examples(3000)
    logged: list[dict[str, float]] = []
    ranker = fit_ranker(x, y, RankerTrainConfig(epochs=30, hidden=16), log=logged.append)
    assert len(logged) == 30 and logged[-1]["mse"] < logged[0]["mse"]
    test_x, test_y = examples(500)
    with torch.no_grad():
        picked = ranker(torch.from_numpy(test_x)).argmax(1).numpy()
    assert (picked == test_y.argmax(1)).mean() > 0.8  # chance: 1/3
    with pytest.raises(segany.InputError, match="no examples"):
        fit_ranker(x[:0], y[:0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": 1}, "evaluation's scenes"),
        ({"scenes": 0}, "scenes must be at least 1"),
        ({"clicks": -1}, "clicks must be at least 0"),
        ({"prompts": "lines"}, "prompts must be one of"),
    ],
)
def test_config_refuses_bad_values(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(segany.InputError, match=message):
        RankerTrainConfig(**kwargs)


class _Prompts(segany.Predictor):
    """A predictor that notes each prompt's point count and whether it had mask input."""

    seen: list[tuple[int, bool]]

    def predict(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.seen.append((len(kwargs["points"]), kwargs.get("mask_input") is not None))
        return super().predict(*args, **kwargs)


def test_examples_follow_corrective_clicks_with_the_previous_logits() -> None:
    torch.manual_seed(0)
    image, disk = _disk_scene()
    predictor = _Prompts(build_sam(TINY), cache_size=0)
    predictor.seen = []
    predictor.set_image(image)
    rng = np.random.default_rng(0)
    examples = list(object_examples(predictor, GraphCut(), image, disk, rng, clicks=2))
    # a random click, the centre click, then 2 corrective clicks (a random model's
    # snapped masks are never exact, so none ends the session early)
    assert [k for k, _, _ in examples] == [0, 0, 1, 2]
    assert predictor.seen == [(1, False), (1, False), (2, True), (3, True)]
    for _, features, ious in examples:
        assert features.shape == (NUM_FEATURES + CLICK_FEATURES,) and len(ious) == 3
        assert all(0.0 <= v <= 1.0 for v in ious)


def test_predictor_scores_snapped_masks_with_the_ranker() -> None:
    torch.manual_seed(0)
    random = build_sam(TINY)
    with pytest.raises(InputError, match="no mask stages are registered"):
        registered_stages(random)  # random weights: none registered
    with pytest.raises(ValueError, match="ranker must be"):
        Stages(ranker="yes")  # type: ignore[arg-type]
    torch.manual_seed(1)
    ranker = MaskRanker(RankerConfig(hidden=8))
    image, _ = _disk_scene()
    point, label = np.array([[80.0, 60.0]]), np.array([1])
    plain = segany.Predictor(random)
    ranked = _staged(random, Stages(graph_cut=GraphCut(), ranker=ranker))
    unranked = _staged(random, Stages(graph_cut=GraphCut()))
    outs = []
    for predictor in (plain, ranked, unranked):
        predictor.set_image(image)
        outs.append(predictor.predict(points=point, labels=label))
    expected = ranker.rank(outs[0].scores, outs[0].masks, outs[1].masks, clicks=(point, label))
    np.testing.assert_allclose(outs[1].scores, expected, rtol=1e-6)
    assert not np.allclose(outs[1].scores, outs[0].scores)
    np.testing.assert_array_equal(outs[1].masks, outs[2].masks)  # masks are the cut's
    np.testing.assert_array_equal(outs[2].scores, outs[0].scores)
    np.testing.assert_array_equal(outs[1].low_res_logits, outs[0].low_res_logits)
    single = ranked.predict(points=point, labels=label, multimask=False)  # nothing to rank
    np.testing.assert_array_equal(
        single.scores, plain.predict(points=point, labels=label, multimask=False).scores
    )
    without_cut = _staged(random, Stages(ranker=ranker))
    without_cut.set_image(image)  # the ranker reads the cut: without one it is not used
    np.testing.assert_array_equal(
        without_cut.predict(points=point, labels=label).scores, outs[0].scores
    )


def _staged(model: Any, stages: Stages) -> StagedPredictor:
    return StagedPredictor(segany.Predictor(model), stages)


def _predictors_on(
    image: np.ndarray, model: Any, clicks: MaskRanker, *box_rankers: MaskRanker | None
) -> list[segany.Predictor | StagedPredictor]:
    """``model``'s plain predictor (the network alone), then one per box ranker (the graph
    cut, the click ranker ``clicks``, no refiner), each with ``image`` set."""
    plain = segany.Predictor(model)
    ranked = [
        _staged(model, Stages(graph_cut=GraphCut(), ranker=clicks, box_ranker=b))
        for b in box_rankers
    ]
    for predictor in (plain, *ranked):
        predictor.set_image(image)
    return [plain, *ranked]


def test_predictor_scores_a_box_alone_with_the_box_ranker() -> None:
    """Boxes alone (one or many) are scored by the box ranker, which reads each box,
    prompts with clicks by the click ranker (which reads the clicks); without a box
    ranker, boxes fall back to a mask ranker, and to the decoder's scores with a click
    ranker (it needs clicks). A ranker of the wrong kind is refused in either place."""
    torch.manual_seed(0)
    random = build_sam(TINY)
    with pytest.raises(InputError, match="no mask stages are registered"):
        registered_stages(random)  # random weights: none registered
    with pytest.raises(ValueError, match="box_ranker must be"):
        Stages(box_ranker="yes")  # type: ignore[arg-type]
    torch.manual_seed(1)
    clicks, boxes = MaskRanker(RankerConfig(8)), MaskRanker(RankerConfig(8, kind="boxes"))
    with pytest.raises(ValueError, match="pass it as box_ranker"):
        Stages(ranker=boxes)
    with pytest.raises(ValueError, match="a clicks ranker, not a box ranker"):
        Stages(box_ranker=clicks)
    image, _ = _disk_scene()
    box, point, label = np.array([50.0, 30.0, 110.0, 90.0]), np.array([[80.0, 60.0]]), [1]
    plain, both, only_clicks = _predictors_on(image, random, clicks, boxes, None)
    many = np.stack([box, box + 8])
    for prompt, expected, given in [
        ({"box": box}, boxes, [box]),
        ({"box": many}, boxes, list(many)),
        ({"box": box, "points": point, "labels": label}, clicks, [box]),
        ({"points": point, "labels": label}, clicks, [None]),
    ]:
        held = (point, np.array(label)) if "points" in prompt else None
        raw, ranked = plain.predict(**prompt), both.predict(**prompt)  # type: ignore[arg-type]
        answers = zip(
            raw.scores.reshape(-1, 3), raw.masks.reshape(-1, 3, *raw.masks.shape[-2:]),
            ranked.masks.reshape(-1, 3, *ranked.masks.shape[-2:]), given, strict=True,
        )  # fmt: skip
        want = np.stack([expected.rank(*a, held) for a in answers]).reshape(raw.scores.shape)
        np.testing.assert_allclose(ranked.scores, want, rtol=1e-6)
    raw = plain.predict(box=box)
    np.testing.assert_array_equal(only_clicks.predict(box=box).scores, raw.scores)
    masks = MaskRanker(RankerConfig(8, kind="masks"))
    only_masks = _staged(random, Stages(graph_cut=GraphCut(), ranker=masks))
    only_masks.set_image(image)
    fallback = only_masks.predict(box=box)
    want = masks.rank(raw.scores, raw.masks, fallback.masks)
    np.testing.assert_allclose(fallback.scores, want, rtol=1e-6)


def test_box_features_describe_how_each_mask_fits_the_box() -> None:
    raw, snapped = _squares()
    box = np.array([0.0, 0.0, 9.0, 9.0])  # mask 0's square, edges inclusive
    f = box_features(box, raw, snapped)
    np.testing.assert_allclose(f[:3], [1.0, 0.5, 0.5])  # snapped bounding boxes' IoU
    np.testing.assert_allclose(f[3:6], [1.0, 0.5, 0.25])  # raw: mask 2 is the whole image
    np.testing.assert_allclose(np.exp(f[6:9]), [100 / 101, 200 / 101, 200 / 101], rtol=1e-3)
    np.testing.assert_allclose(f[9:], [0.0, 100 / 201, 100 / 201])  # share outside the box
    empty = np.zeros_like(snapped)
    assert box_features(box, raw, empty)[0] == 0.0
    scores = np.array([0.9, 0.5, 0.1])
    both = ranking_features(scores, raw, snapped, box)
    assert both.shape == (NUM_FEATURES + BOX_FEATURES,)
    np.testing.assert_allclose(both[:NUM_FEATURES], ranking_features(scores, raw, snapped))
    ranker = MaskRanker(RankerConfig(hidden=4, kind="boxes"))
    assert ranker.rank(scores, raw, snapped, box).shape == (3,)
    with pytest.raises(ValueError, match="give the box"):
        ranker.rank(scores, raw, snapped)
    masks = MaskRanker(RankerConfig(hidden=4, kind="masks"))  # a mask ranker ignores a box
    np.testing.assert_array_equal(
        masks.rank(scores, raw, snapped, box), masks.rank(scores, raw, snapped)
    )


def test_a_saved_box_ranker_loads_as_one(tmp_path) -> None:
    path = tmp_path / "box_ranker.safetensors"
    save_state_dict_file(MaskRanker(RankerConfig(hidden=8, kind="boxes")).export(), path)
    assert refine.load_box_ranker(path=path).config == RankerConfig(hidden=8, kind="boxes")
    odd = {"mlp.0.weight": torch.zeros(8, 25)}
    save_state_dict_file(odd, path)
    with pytest.raises(CheckpointError, match="not a box ranker: 25 inputs"):
        refine.load_box_ranker(path=path)
    x = np.random.default_rng(0).normal(size=(40, NUM_FEATURES + BOX_FEATURES))
    y = np.random.default_rng(1).uniform(size=(40, 3))
    config = RankerTrainConfig(epochs=1, hidden=4, prompts="boxes")
    assert fit_ranker(x, y.astype(np.float32), config).config.kind == "boxes"
    clicks = RankerTrainConfig(epochs=1, hidden=4)
    assert fit_ranker(x, y.astype(np.float32), clicks).config.kind == "clicks"
    assert fit_ranker(x[:, :18], y.astype(np.float32), clicks).config.kind == "masks"
    with pytest.raises(segany.InputError, match=r"Nx18 \(a mask ranker's\) or Nx30"):
        fit_ranker(x[:, :20], y)


def test_box_examples_answer_each_box_with_three_snapped_masks() -> None:
    """One example per object for its tight box, then one per object for its noisy box,
    the boxes drawn as the evaluation draws them; the collector takes the same."""
    torch.manual_seed(0)
    scene = generate_scene(3, SceneConfig(size=(64, 80), min_objects=2, max_objects=3))
    predictor = segany.Predictor(build_sam(TINY), cache_size=0)
    predictor.set_image(scene.image)
    examples = list(box_examples(predictor, GraphCut(), scene, np.random.default_rng(4)))
    assert len(examples) == 2 * len(scene.masks)
    tight, _ = prompt_boxes(scene, np.random.default_rng(4))
    three = predictor.predict(box=tight, multimask=True)
    snapped = np.stack([GraphCut()(scene.image, m, box=tight[0]) for m in three.masks[0]])
    want = ranking_features(three.scores[0], three.masks[0], snapped, tight[0])
    np.testing.assert_allclose(examples[0][0], want, rtol=1e-5)
    for features, ious in examples:
        assert features.shape == (NUM_FEATURES + BOX_FEATURES,)
        assert all(0.0 <= v <= 1.0 for v in ious)

    scenes: Any = [scene]  # a SceneDataset is read by len() and index
    x, y = collect_ranking_examples(predictor, GraphCut(), scenes, progress=False, prompts="boxes")
    assert x.shape == (2 * len(scene.masks), NUM_FEATURES + BOX_FEATURES)
    assert y.shape == (len(x), 3)
    first = next(box_examples(predictor, GraphCut(), scene, np.random.default_rng(0)))
    np.testing.assert_allclose(x[0], first[0], rtol=1e-6)  # scene 0: its rng, seeded 0
    with pytest.raises(ValueError, match="prompts must be one of"):
        collect_ranking_examples(predictor, GraphCut(), scenes, prompts="lines")
