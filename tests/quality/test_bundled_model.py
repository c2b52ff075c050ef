"""The bundled segany_shapes model: it loads, it segments, and the official code agrees.

These tests use the trained weights shipped in the package (segany/assets), so they check
real segmentation quality on held-out generated scenes (seeds never used in training),
with margins below the figures measured on 200 scenes (docs/training.md): the network
alone (``segany.Predictor``) and with the mask stages registered for its weights
(``segany.refine.StagedPredictor`` with ``registered_stages``). What each stage adds (the
ablations) is checked by the tests marked ``full`` (``make test-all``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

import segany
from segany.data.masks import binary_iou
from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
from segany.eval import evaluate_promptable, summarize
from segany.eval.promptable import box_masks_of, evaluate_scene, prompt_boxes
from segany.loading import cached_path
from segany.refine import StagedPredictor, Stages, get_stage_spec, registered_stages
from segany.registry import DEFAULT_MODEL, get_spec
from segany.weights import sha256_file

# Floors for 12 held-out scenes: the bundled weights' own figures there, less a margin of
# about 0.04 (docs/training.md has the 200-scene table). Raise them with new weights.
FLOORS = {"box": 0.86, "centre": 0.74, "clicks_3": 0.87}  # measured: 0.903, 0.781, 0.908
# (the clicks placed at the centre, 2026-12-07: data.masks.interior_point; with the
# clicks placed as before, ties to the first pixel in raster order: 0.903, 0.762, 0.903,
# and floors 0.86, 0.72, 0.86; corrective clicks merged into the previous mask; figures
# below are of that placement: answered as they are: 3 clicks 0.859;
# v10 with its refiner, graph cut, click ranker with click features, box-cut ranker and
# zoomed crops for clicks (its registered stages, segany.refine.registered_stages; the
# Predictor's default before 0.2.0), 3 masks per corrective click and per box;
# without the zoom: centre 0.648, 3 clicks 0.836 (0.773 unmerged); the box with the
# previous box ranker, of the 3 snapped masks: 0.831; with the ranker of the
# 18 features alone: 0.831, 0.624, 0.788; the box with its single mask: 0.797; with single-mask
# corrections and the first ranker: 0.797, 0.619,
# 0.682; single-mask corrections without the ranker: 0.810, 0.538, 0.709 (before
# GrabCut's seeded start); with the refiner alone: 0.604, 0.415, 0.568; v10 alone:
# 0.537, 0.368, 0.529)
# The network alone (segany.Predictor, no mask stages; boxes answered with 1 mask) on the
# same 12 scenes and prompts, less the same margin (measured 2026-12, segany 0.2.0: box
# 0.537, centre 0.399, clicks_3 0.467; noisy box 0.502, random 0.326, clicks_1 0.431).
NETWORK_FLOORS = {"box": 0.50, "centre": 0.36, "clicks_3": 0.43}
# Object-aware SegEvery with the bundled prompt head, AR@100 on 6 scenes, less a margin.
# These 6 scenes: 0.141 with one mask per box and NMS 0.7 (the old default), 0.192 with the
# default three masks per box and no NMS.
AR_FLOOR = 0.17

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


@pytest.fixture(scope="module")
def model() -> segany.models.Sam:
    return segany.load_model("segany_shapes")


@pytest.fixture(scope="module")
def stages(model) -> Stages:
    """The mask stages registered for the bundled weights (all five)."""
    return registered_stages(model)


def test_bundled_weights_are_the_default_and_verified() -> None:
    spec = get_spec("segany_shapes")
    assert DEFAULT_MODEL == "segany_shapes"
    assert spec.weights is not None and spec.weights.url.startswith("bundled:")
    path = cached_path(spec)
    assert path is not None and path.stat().st_size == spec.weights.size
    assert spec.weights.size <= 25_000_000
    assert sha256_file(path) == spec.weights.sha256
    assert not segany.load_model().is_random


QUALITY_SCENES = 12
Rows = list[dict[str, float]]


@pytest.fixture(scope="module")
def rows_of(model, stages) -> Callable[..., Rows]:
    """``rows_of(scenes, without=(), merge=True, network=False)``: the rows (one per
    object, 3 corrective clicks, merged or not) of ``StagedPredictor(Predictor(model,
    cache_size=0), stages.without(*without))`` (with ``network``: the bare
    ``Predictor``) on the first ``scenes`` held-out scenes,
    prompted alike for every predictor; kept, so tests comparing the same predictor share
    its rows (the first scenes of a longer run are a shorter run's)."""
    held_out = SceneDataset(QUALITY_SCENES, EVAL_BASE_SEED)
    kept: dict[tuple[object, ...], list[Rows]] = {}

    def rows(
        scenes: int, without: tuple[str, ...] = (), merge: bool = True, network: bool = False
    ) -> Rows:
        key = (merge, network, *sorted(set(without)))
        if len(kept.get(key, [])) < scenes:
            predictor: segany.Predictor | StagedPredictor = segany.Predictor(model, cache_size=0)
            if not network:
                predictor = StagedPredictor(predictor, stages.without(*without))
            rng, box_masks = np.random.default_rng(0), box_masks_of(predictor)
            kept[key] = [
                evaluate_scene(predictor, held_out[i], 3, rng, box_masks=box_masks, merge=merge)
                for i in range(scenes)
            ]
        return [row for scene in kept[key][:scenes] for row in scene]

    return rows


@pytest.fixture(scope="module")
def quality_rows(rows_of) -> Rows:
    """The rows of the model with all its registered stages on the 12 quality scenes."""
    return rows_of(QUALITY_SCENES)


@pytest.mark.parametrize(
    "network",
    [
        # 12 scenes through five stages take 4.5 to 7.5 minutes of one core: make test-all
        pytest.param(False, id="with its stages", marks=pytest.mark.full),
        pytest.param(True, id="network alone"),
    ],
)
def test_quality_on_held_out_scenes(rows_of, network: bool) -> None:
    """The bundled weights with all their registered stages, and alone (the bare
    Predictor, as the official code answers: the floor the stages start from)."""
    rows = rows_of(QUALITY_SCENES, network=network)
    table = summarize(rows)["all"]
    shown = ", ".join(f"{k} {v:.3f}" for k, v in table.items())
    print(
        f"\n{'the network alone' if network else 'with its stages'}, {len(rows)} objects: {shown}"
    )
    for key, floor in (NETWORK_FLOORS if network else FLOORS).items():
        assert table[key] >= floor, (key, table[key])
    assert table["centre_oracle"] >= table["centre"]
    assert table["clicks_3"] > table["clicks_1"] > table["centre"], "corrective clicks help"


@pytest.mark.full
def test_bundled_zoom_answers_clicks_on_crops(stages, rows_of, quality_rows) -> None:
    """The bundled model answers a click on crops around it as well (segany.refine.zoom),
    which show small objects larger: on 200 scenes the centre click rose from 0.663 to
    0.733 (docs/training.md, the clicks placed as they were then); here, on the quality
    test's 12 scenes with the same prompts (the rows with all the registered stages
    against the same without zoom), the centre click by 0.08 and 3 clicks by 0.05 or more
    (measured on these scenes, the clicks at the centre: centre 0.667 -> 0.781, 3 clicks
    0.845 -> 0.908; with the clicks placed as before 2026-12-07, 0.648 -> 0.762 and 0.836
    -> 0.903, when the bar for 3 clicks was 0.06: the better-placed corrections leave the
    zoom a little less to add)."""
    assert stages.zoom is not None  # registered for the weights
    without = summarize(rows_of(QUALITY_SCENES, without=("zoom",)))["all"]
    zoomed = summarize(quality_rows)["all"]
    for key, gain in {"centre": 0.08, "clicks_3": 0.05}.items():
        print(f"\nwithout / with the zoom: {key} {without[key]:.3f}/{zoomed[key]:.3f}")
        assert zoomed[key] >= without[key] + gain, (key, without[key], zoomed[key])
    assert zoomed["box"] == without["box"]  # boxes are not zoomed


@pytest.mark.full
def test_merged_corrections_keep_what_was_right(rows_of) -> None:
    """A corrective click's answer merged into the previous mask around the click
    (segany.session.progressive_merge, the evaluation's default) keeps the regions an
    earlier answer had right: on 200 scenes 3 clicks rose from 0.853 to 0.882
    (docs/training.md); here, on 4 scenes without zoom, with the same prompts for both,
    by 0.025 or more. Measured with the clicks at the centre (2026-12-07): 0.780 -> 0.816,
    and on the first 8 / 12 / 16 / 20 held-out scenes +0.037 / 0.034 / 0.036 / 0.039; with
    the clicks placed as before, the unmerged answers were worse and merging added more
    (0.760 -> 0.831, when the bar was 0.04)."""
    unmerged, merged = {"without": ("zoom",), "merge": False}, {"without": ("zoom",)}
    _assert_gains(rows_of, unmerged, merged, {"clicks_3": 0.025}, "merging", scenes=4)
    first = [summarize(rows_of(4, **options))["all"]["centre"] for options in (unmerged, merged)]
    assert first[0] == first[1]  # the first click is not merged


@pytest.mark.full
def test_bundled_refiner_lifts_the_masks(stages, rows_of) -> None:
    """The shipped colour-model refiner is registered and improves boxes and clicks.

    On 200 scenes it lifts the tight box by 0.063 (docs/training.md); here, on 8
    scenes with the same prompts for both, the box and noisy box by 0.025 or more and the
    click answers by at least 0.005.
    """
    spec = get_stage_spec("segany_shapes")
    assert spec is not None and spec.refiner is not None
    path = segany.loading.bundled_path(spec.refiner.filename)
    assert sha256_file(path) == spec.refiner.sha256 and path.stat().st_size == spec.refiner.size
    assert stages.refiner is not None  # registered for the weights
    refined = {"without": ("graph_cut", "zoom")}
    plain = {"without": ("graph_cut", "zoom", "refiner")}
    gains = {"box": 0.025, "noisy_box": 0.025, "centre": 0.005, "clicks_3": 0.005}
    _assert_gains(rows_of, plain, refined, gains, "the refiner")


@pytest.mark.full
def test_graph_cut_snaps_the_masks_to_the_objects(stages, rows_of) -> None:
    """Graph-cut snapping is the bundled model's registered last stage, and lifts every
    prompt type (200 scenes: tight box 0.591 -> 0.748, docs/training.md); here, on 8
    scenes with the same prompts for both, boxes by 0.08 and clicks by 0.04 or more."""
    assert stages.graph_cut is not None and stages.refiner is not None
    gains = {"box": 0.08, "noisy_box": 0.08, "centre": 0.04, "clicks_3": 0.04}
    plain, snapped = {"without": ("graph_cut", "zoom")}, {"without": ("zoom",)}
    _assert_gains(rows_of, plain, snapped, gains, "the graph cut")


@pytest.mark.full
def test_bundled_ranker_picks_the_better_snapped_mask(stages, rows_of) -> None:
    """The shipped ranker scores a click's snapped masks (a registered stage); on 200
    scenes it lifts the centre click from 0.536 to 0.663 and, picking among 3 masks per
    corrective click, 3 clicks to 0.789 (docs/training.md); here, on 4 scenes with the
    same prompts for both, the centre and random clicks and 3 clicks by 0.03 or more
    (measured: 0.556 -> 0.645, 0.415 -> 0.524, 0.662 -> 0.816; 0.526 -> 0.624 and 0.634 ->
    0.831 with the clicks placed as before 2026-12-07)."""
    spec = get_stage_spec("segany_shapes")
    assert spec is not None and spec.ranker is not None
    path = segany.loading.bundled_path(spec.ranker.filename)
    assert sha256_file(path) == spec.ranker.sha256 and path.stat().st_size == spec.ranker.size
    assert stages.ranker is not None  # registered for the weights
    gains = {"centre": 0.03, "random": 0.03, "clicks_3": 0.03}
    plain, ranked = {"without": ("ranker", "zoom")}, {"without": ("zoom",)}
    _assert_gains(rows_of, plain, ranked, gains, "the ranker", scenes=4)


@pytest.mark.full
def test_bundled_box_ranker_answers_a_box_with_the_better_of_three(model, stages) -> None:
    """The shipped box ranker is registered for box prompts: each box is answered with 2
    snapped masks and the box's own cut, and the best-scored kept. On 200 scenes it lifts
    the tight box from 0.748 (the single mask) to 0.864 (docs/training.md); here, on the
    tight and noisy boxes of 8 scenes (boxes only, the same for both), the tight box by
    0.07 and the noisy box by 0.01 or more (measured: +0.098 and +0.023; a loose box is
    where the box's own cut is worst, and the noisy box gains least)."""
    spec = get_stage_spec("segany_shapes")
    assert spec is not None and spec.box_ranker is not None
    path = segany.loading.bundled_path(spec.box_ranker.filename)
    assert sha256_file(path) == spec.box_ranker.sha256
    assert path.stat().st_size == spec.box_ranker.size
    ranked = StagedPredictor(segany.Predictor(model, cache_size=0), stages)
    assert ranked.stages.box_ranker is not None  # registered for the weights
    assert ranked.stages.box_ranker.config.kind == "box_cut"
    assert ranked.preferred_box_masks == 3
    single = StagedPredictor(  # boxes: 1 mask
        segany.Predictor(model, cache_size=0), stages.without("box_ranker")
    )
    assert single.preferred_box_masks == 1
    tables = [_box_table(predictor) for predictor in (single, ranked)]
    print(f"\nwithout / with the box ranker: {tables[0]} / {tables[1]}")
    for key, gain in {"box": 0.07, "noisy_box": 0.01}.items():
        assert tables[1][key] >= tables[0][key] + gain, (key, tables[0][key], tables[1][key])


def _box_table(predictor: StagedPredictor) -> dict[str, float]:
    """mIoU of the best-scored answer to the tight and the noisy box of every object of 8
    held-out scenes (the evaluation's boxes), answered as ``segany eval`` answers them."""
    scenes = SceneDataset(8, EVAL_BASE_SEED)
    multimask = box_masks_of(predictor) == 3
    ious: dict[str, list[float]] = {"box": [], "noisy_box": []}
    for i in range(8):
        scene = scenes[i]
        predictor.set_image(scene.image)
        boxes = prompt_boxes(scene, np.random.default_rng(i))
        for key, prompt in zip(ious, boxes, strict=True):
            answer = predictor.predict(box=prompt, multimask=multimask)
            for masks, scores, truth in zip(answer.masks, answer.scores, scene.masks, strict=True):
                ious[key].append(binary_iou(masks[int(np.argmax(scores))], truth))
    return {key: round(float(np.mean(values)), 3) for key, values in ious.items()}


def _assert_gains(
    rows_of: Callable[..., Rows],
    plain: dict[str, object],
    better: dict[str, object],
    gains: dict[str, float],
    stage: str,
    scenes: int = 8,
) -> None:
    """The rows with ``better`` options (of ``rows_of``) beat those with ``plain`` options
    by ``gains`` on the first ``scenes`` held-out scenes, the same prompts (both without a
    zoom: the stages themselves are compared)."""
    tables = [summarize(rows_of(scenes, **options))["all"] for options in (plain, better)]
    shown = (f"{k} {tables[0][k]:.3f}/{tables[1][k]:.3f}" for k in gains)
    print(f"\nwithout / with {stage}: " + ", ".join(shown))
    for key, gain in gains.items():
        assert tables[1][key] >= tables[0][key] + gain, (key, tables[0][key], tables[1][key])


def test_official_predictor_gives_the_same_masks(model) -> None:
    from segment_anything import SamPredictor  # type: ignore[import-untyped]

    from segany.reference import official_sam

    official = official_sam(model.config)
    official.load_state_dict(model.state_dict())
    scene = SceneDataset(1, EVAL_BASE_SEED)[0]
    # the official code has no mask stages: the bare network
    ours = segany.Predictor(model)
    theirs = SamPredictor(official.eval())
    ours.set_image(scene.image)
    theirs.set_image(scene.image)
    for mask, box in zip(scene.masks[:6], scene.boxes[:6], strict=True):
        ys, xs = np.nonzero(mask)
        point = np.array([[xs[len(xs) // 2], ys[len(ys) // 2]]], dtype=np.float64)
        got = ours.predict(points=point, labels=[1])
        with torch.inference_mode():
            want_masks, want_scores, _ = theirs.predict(
                point_coords=point, point_labels=np.array([1])
            )
        assert np.abs(got.scores - want_scores).max() <= 1e-4
        assert (got.masks != want_masks).mean() <= 1e-4
        got_box = ours.predict(box=box, multimask=False)
        want_box, _, _ = theirs.predict(box=box, multimask_output=False)
        assert (got_box.masks != want_box).mean() <= 1e-4


def test_bundled_prompt_head_finds_objects(model) -> None:
    """Object-aware SegEvery with the shipped head: its masks cover the scenes' objects."""
    from segany.eval.proposals import RecallAccumulator, proposals_from_records

    spec = get_spec("segany_shapes")
    assert spec.prompt_head is not None
    head_path = segany.loading.bundled_path(spec.prompt_head.filename)
    assert sha256_file(head_path) == spec.prompt_head.sha256
    assert head_path.stat().st_size == spec.prompt_head.size
    generator = segany.MaskGenerator(model, strategy="objects", output_mode="coco_rle")
    recall = RecallAccumulator(max_dets=(100,))
    scenes = SceneDataset(6, EVAL_BASE_SEED)
    for i in range(6):
        records = generator.generate(scenes[i].image)
        assert all("prompt_box" in r for r in records)
        recall.add(scenes[i].masks, proposals_from_records(records))
    ar = recall.result().summary()["AR@100"]
    print(f"\nobject-aware AR@100 on 6 scenes: {ar:.3f}")
    assert ar >= AR_FLOOR


@pytest.mark.full  # fast mode's closeness to exact stays in make test: tests/engine/test_fast.py
def test_fast_mode_keeps_the_exact_quality(model, monkeypatch) -> None:
    """ "fast" (bf16 decoder, fused encoder) answers prompts as well as "exact".

    On 100 scenes the fast engine's acceptance asks for point and box mIoU within 0.005
    (benchmarks/fast_quality.py, docs/benchmarks.md); here, on 4 scenes, every prompt
    type's mIoU stays within 0.01 and most masks are identical in effect. The graph cut
    and ranker are left out: GrabCut and the ranker's pick between near-tied snapped masks
    amplify bf16 rounding (with them, on these 4 scenes, centre differed by 0.014 and
    random by 0.015); the engine (decoder + refiner) is what is compared, on the whole
    image (no zoom). bf16 is forced where this CPU would emulate it (the fast mode would
    choose fp32 there): the quality bar is bf16's.
    """
    monkeypatch.setattr(segany.engine.modes, "native_bf16", lambda: True)
    fast = segany.load_model("segany_shapes", mode="fast")
    scenes = SceneDataset(4, EVAL_BASE_SEED)
    tables = []
    for candidate in (model, fast):
        stages = registered_stages(candidate).without("graph_cut", "zoom")
        predictor = StagedPredictor(segany.Predictor(candidate, cache_size=0), stages)
        rows = evaluate_promptable(predictor, (scenes[i] for i in range(4)), clicks=1, seed=3)
        tables.append((rows, summarize(rows)["all"]))
    (exact_rows, exact), (fast_rows, fast_table) = tables
    for key in ("centre", "random", "box", "noisy_box", "clicks_1"):
        assert abs(fast_table[key] - exact[key]) <= 0.01, (key, fast_table[key], exact[key])
    same = np.mean(
        [abs(a["box"] - b["box"]) < 0.01 for a, b in zip(exact_rows, fast_rows, strict=True)]
    )
    assert same >= 0.9


@pytest.mark.full
def test_fast_segevery_matches_exact_masks(model, monkeypatch) -> None:
    """Grid SegEvery in "fast" finds the masks "exact" finds, matched at IoU 0.9.

    Filters lowered to this model's IoU head (docs/benchmarks.md), so real masks survive.
    The fast engine's target is 95 % matched (97.3 % on 20 scenes, docs/benchmarks.md):
    "fast" keeps this model's narrow decoder in fp32, since bf16 rounding reordered its
    near-duplicate masks in the box NMS (92.8 %).
    """
    from segany.eval.mask_iou import mask_iou_matrix

    options = {"pred_iou_thresh": 0.1, "stability_score_thresh": 0.35, "output_mode": "coco_rle"}
    monkeypatch.setattr(segany.engine.modes, "native_bf16", lambda: True)  # bf16's bar
    fast = segany.load_model("segany_shapes", mode="fast")
    scene = SceneDataset(2, EVAL_BASE_SEED)[1]
    exact_masks = [
        r["segmentation"] for r in segany.MaskGenerator(model, **options).generate(scene.image)
    ]
    fast_masks = [
        r["segmentation"] for r in segany.MaskGenerator(fast, **options).generate(scene.image)
    ]
    assert len(exact_masks) >= 20
    ious = mask_iou_matrix(exact_masks, fast_masks)
    matched = (ious.max(axis=1) >= 0.9).mean()
    print(
        f"\n{len(exact_masks)} exact masks, {len(fast_masks)} fast; matched at 0.9: {matched:.3f}"
    )
    assert matched >= 0.95
    assert abs(len(fast_masks) - len(exact_masks)) <= 0.05 * len(exact_masks)
