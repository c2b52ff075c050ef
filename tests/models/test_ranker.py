"""The ranker of a click's snapped masks: its features, its file, its fit, the Predictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import segany
from segany.errors import CheckpointError
from segany.models import build_sam
from segany.models.graph_cut import GraphCut
from segany.models.ranker import NUM_FEATURES, MaskRanker, RankerConfig, ranking_features
from segany.models.refiner import MaskRefiner
from segany.train.ranker import RankerTrainConfig, fit_ranker, object_examples
from segany.weights import save_state_dict_file
from tests.models.test_graph_cut import _disk_scene
from tests.test_loading import TINY


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


def test_a_saved_ranker_loads_with_its_width_and_gives_the_same_scores(tmp_path) -> None:
    torch.manual_seed(0)
    ranker = MaskRanker(RankerConfig(hidden=8)).eval()
    ranker.mean.normal_()
    path = tmp_path / "ranker.safetensors"
    save_state_dict_file(ranker.export(), path)
    loaded = segany.load_ranker(path=path)
    assert loaded.config == RankerConfig(hidden=8)
    raw, snapped = _squares()
    scores = np.array([0.2, 0.3, 0.4])
    first, again = ranker.rank(scores, raw, snapped), loaded.rank(scores, raw, snapped)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (3,) and ((first > 0) & (first < 1)).all()
    other = tmp_path / "refiner.safetensors"
    save_state_dict_file(MaskRefiner().export(), other)
    with pytest.raises(CheckpointError, match="is not a mask ranker"):
        segany.load_ranker(path=other)


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
    predictor = _Prompts(build_sam(TINY), cache_size=0, graph_cut=None, ranker=None)
    predictor.seen = []
    predictor.set_image(image)
    rng = np.random.default_rng(0)
    examples = list(object_examples(predictor, GraphCut(), image, disk, rng, clicks=2))
    # a random click, the centre click, then 2 corrective clicks (a random model's
    # snapped masks are never exact, so none ends the session early)
    assert [k for k, _, _ in examples] == [0, 0, 1, 2]
    assert predictor.seen == [(1, False), (1, False), (2, True), (3, True)]
    for _, features, ious in examples:
        assert features.shape == (NUM_FEATURES,) and len(ious) == 3
        assert all(0.0 <= v <= 1.0 for v in ious)


def test_predictor_scores_snapped_masks_with_the_ranker() -> None:
    torch.manual_seed(0)
    random = build_sam(TINY)
    assert segany.Predictor(random).ranker is None  # random weights: none registered
    with pytest.raises(ValueError, match="ranker must be"):
        segany.Predictor(random, ranker="yes")
    torch.manual_seed(1)
    ranker = MaskRanker(RankerConfig(hidden=8))
    image, _ = _disk_scene()
    point, label = np.array([[80.0, 60.0]]), np.array([1])
    plain = segany.Predictor(random, refiner=None, graph_cut=None)
    ranked = segany.Predictor(random, refiner=None, graph_cut=GraphCut(), ranker=ranker)
    unranked = segany.Predictor(random, refiner=None, graph_cut=GraphCut(), ranker=None)
    outs = []
    for predictor in (plain, ranked, unranked):
        predictor.set_image(image)
        outs.append(predictor.predict(points=point, labels=label))
    expected = ranker.rank(outs[0].scores, outs[0].masks, outs[1].masks)
    np.testing.assert_allclose(outs[1].scores, expected, rtol=1e-6)
    assert not np.allclose(outs[1].scores, outs[0].scores)
    np.testing.assert_array_equal(outs[1].masks, outs[2].masks)  # masks are the cut's
    np.testing.assert_array_equal(outs[2].scores, outs[0].scores)
    np.testing.assert_array_equal(outs[1].low_res_logits, outs[0].low_res_logits)
    single = ranked.predict(points=point, labels=label, multimask=False)  # nothing to rank
    np.testing.assert_array_equal(
        single.scores, plain.predict(points=point, labels=label, multimask=False).scores
    )
    without_cut = segany.Predictor(random, refiner=None, graph_cut=None, ranker=ranker)
    without_cut.set_image(image)  # the ranker reads the cut: without one it is not used
    np.testing.assert_array_equal(
        without_cut.predict(points=point, labels=label).scores, outs[0].scores
    )
