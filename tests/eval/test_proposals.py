"""Class-agnostic mask proposal recall: hand-made cases, pycocotools' COCOeval, the CLI.

Every hand-made case checks a value worked out by hand and the same case run through
``COCOeval(iouType="segm")`` with ``useCats = 0`` (pycocotools is a test-only dependency).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import segany
from segany.cli.main import main
from segany.data.rle import mask_to_rle
from segany.errors import InputError
from segany.eval import (
    IOU_THRESHOLDS,
    RecallAccumulator,
    evaluate_proposals,
    mask_iou_matrix,
    proposal_recall,
    proposals_from_records,
)
from segany.eval import mask_iou as mask_iou_module

H, W = 20, 100
COCO_DETS = (10, 100, 1000)


def cols(x0: int, x1: int, height: int = H, width: int = W) -> np.ndarray:
    """All rows of columns ``[x0, x1)``: ``height * (x1 - x0)`` pixels."""
    mask = np.zeros((height, width), bool)
    mask[:, x0:x1] = True
    return mask


def block(y0: int, y1: int, x0: int, x1: int, size: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(size, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _encode(mask: np.ndarray) -> dict[str, Any]:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def coco_recall(
    gts: Sequence[Sequence[np.ndarray]],
    proposals: Sequence[tuple[Sequence[np.ndarray], Sequence[float] | np.ndarray]],
    max_dets: Sequence[int] = COCO_DETS,
    gt_areas: Sequence[Sequence[float]] | None = None,
) -> np.ndarray:
    """pycocotools' ``eval["recall"][:, 0]`` (TxAxM) for one "object" category, -1 -> NaN.

    The result COCO is built by hand rather than with ``loadRes``, which fails on an empty
    result list; ids start at 1 because COCOeval takes an id of 0 for "no match".
    """
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    detections: list[dict[str, Any]] = []
    for i, (truth, (masks, scores)) in enumerate(zip(gts, proposals, strict=True)):
        size = next(iter([*truth, *masks]), np.zeros((H, W), bool)).shape
        images.append({"id": i + 1, "height": size[0], "width": size[1]})
        for k, mask in enumerate(truth):
            rle = _encode(mask)
            area = float(mask.sum()) if gt_areas is None else float(gt_areas[i][k])
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i + 1, "category_id": 1,
                 "segmentation": rle, "area": area, "iscrowd": 0,
                 "bbox": mask_utils.toBbox(rle).tolist()}
            )  # fmt: skip
        for mask, score in zip(masks, scores, strict=True):
            rle = _encode(mask)
            detections.append(
                {"id": len(detections) + 1, "image_id": i + 1, "category_id": 1,
                 "segmentation": rle, "score": float(score), "area": float(mask.sum()),
                 "iscrowd": 0, "bbox": mask_utils.toBbox(rle).tolist()}
            )  # fmt: skip
    categories = [{"id": 1, "name": "object"}]
    with contextlib.redirect_stdout(io.StringIO()):
        truth_coco, found_coco = COCO(), COCO()
        truth_coco.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        found_coco.dataset = {"images": images, "annotations": detections, "categories": categories}
        truth_coco.createIndex()
        found_coco.createIndex()
        evaluator = COCOeval(truth_coco, found_coco, iouType="segm")
        evaluator.params.useCats = 0
        evaluator.params.maxDets = list(max_dets)
        evaluator.evaluate()
        evaluator.accumulate()
    recall = np.asarray(evaluator.eval["recall"], dtype=np.float64)[:, 0]
    return np.where(recall == -1, np.nan, recall)


def check(
    gts: Sequence[Sequence[np.ndarray]],
    proposals: Sequence[tuple[Sequence[np.ndarray], Sequence[float] | np.ndarray]],
    max_dets: Sequence[int] = COCO_DETS,
    gt_areas: Sequence[Sequence[float]] | None = None,
) -> dict[str, float]:
    """Our summary, after checking our whole recall table against COCOeval's to 1e-9."""
    result = proposal_recall(gts, proposals, max_dets=max_dets, gt_areas=gt_areas)
    expected = coco_recall(gts, proposals, max_dets, gt_areas)
    assert result.recall.shape == expected.shape
    np.testing.assert_allclose(result.recall, expected, rtol=0, atol=1e-9, equal_nan=True)
    return result.summary()


# --------------------------------------------------------------------- hand-made cases
def test_one_of_two_found_perfectly() -> None:
    a, b = cols(0, 30), cols(50, 80)  # 600 px each: small
    metrics = check([[a, b]], [([a], [0.9])])
    for m in COCO_DETS:
        assert metrics[f"AR@{m}"] == 0.5 and metrics[f"AR_small@{m}"] == 0.5
        assert np.isnan(metrics[f"AR_medium@{m}"]) and np.isnan(metrics[f"AR_large@{m}"])
    assert metrics["num_gt"] == 2 and metrics["num_gt_small"] == 2
    assert metrics["num_gt_medium"] == 0 and metrics["num_images"] == 1


def test_iou_072_counts_for_thresholds_up_to_070() -> None:
    truth, found = cols(0, 25), cols(0, 18)
    assert mask_iou_matrix([found], [truth])[0, 0] == 18 / 25
    expected = sum(t <= 0.72 for t in IOU_THRESHOLDS) / 10  # 0.50 ... 0.70
    assert expected == 0.5
    assert check([[truth]], [([found], [1.0])])["AR@100"] == expected


def test_ranking_and_max_dets_cut() -> None:
    truths = [cols(0, 10), cols(20, 30), cols(40, 50)]
    junk = [cols(60, 100)] * 9
    masks = [truths[2], *junk[:4], truths[0], *junk[4:], truths[1]]  # input order is not rank
    scores = [0.3, 1, 1, 1, 1, 0.5, 1, 1, 1, 1, 1, 0.4]
    # rank 0-8: junk; 9: truths[0]; 10: truths[1]; 11: truths[2]
    metrics = check([truths], [(masks, scores)], max_dets=(1, 10, 11, 100))
    # (the mean of ten equal recalls of 1/3 is 1/3 up to rounding)
    assert metrics["AR@1"] == 0 and metrics["AR@10"] == pytest.approx(1 / 3, abs=1e-15)
    assert metrics["AR@11"] == pytest.approx(2 / 3, abs=1e-15) and metrics["AR@100"] == 1


def test_area_splits_are_coco_ranges_inclusive_at_both_ends() -> None:
    size = (200, 200)
    small = block(0, 10, 0, 10, size)  # 100
    edge = block(20, 52, 0, 32, size)  # 1024 = 32**2: small *and* medium
    medium = block(60, 100, 0, 50, size)  # 2000
    large = block(100, 200, 100, 200, size)  # 10000
    found = [small, edge, large]
    metrics = check([[small, edge, medium, large]], [(found, [0.9, 0.8, 0.7])])
    assert metrics["num_gt"] == 4 and metrics["num_gt_small"] == 2
    assert metrics["num_gt_medium"] == 2 and metrics["num_gt_large"] == 1
    assert metrics["AR@1000"] == 3 / 4 and metrics["AR_small@1000"] == 1
    assert metrics["AR_medium@1000"] == 1 / 2 and metrics["AR_large@1000"] == 1


def test_a_duplicate_counts_once() -> None:
    a, b = cols(0, 30), cols(50, 80)
    assert check([[a, b]], [([a, a, cols(1, 30)], [0.9, 0.8, 0.7])])["AR@10"] == 0.5


def test_image_without_ground_truth_changes_nothing() -> None:
    a, b = cols(0, 30), cols(50, 80)
    alone = check([[a, b]], [([a], [0.9])])
    extra = ([cols(0, 50), cols(10, 20)], [1.0, 0.95])
    both = check([[a, b], []], [([a], [0.9]), extra])
    assert both["num_images"] == 2 and alone["num_images"] == 1
    assert {k: v for k, v in both.items() if k.startswith("AR@")} == {
        k: v for k, v in alone.items() if k.startswith("AR@")
    }


def test_no_predictions_give_zero_and_no_ground_truth_gives_nan() -> None:
    metrics = check([[cols(0, 30)], [cols(0, 10), cols(20, 90)]], [([], []), ([], [])])
    assert metrics["AR@10"] == 0 and metrics["AR_small@1000"] == 0
    assert metrics["AR_medium@1000"] == 0 and np.isnan(metrics["AR_large@1000"])
    empty = check([[]], [([cols(0, 30)], [1.0])])
    assert all(np.isnan(empty[f"AR@{m}"]) for m in COCO_DETS) and empty["num_gt"] == 0


def test_ground_truth_inside_the_range_is_preferred() -> None:
    a, b = cols(0, 50, 10), cols(10, 60, 10)  # 500 px each
    found = cols(0, 50, 10)  # IoU 1 with a, 400 / 600 = 0.667 with b
    metrics = check([[a, b]], [([found], [1.0])], gt_areas=[[100, 2000]])
    assert metrics["AR@10"] == 0.5  # all sizes: it takes a, the better match
    assert metrics["AR_small@10"] == 1  # a is small (area given as 100)
    # medium: a is ignored, so it takes b (medium) at 0.50, 0.55, 0.60, 0.65
    assert metrics["AR_medium@10"] == pytest.approx(0.4, abs=1e-15)


def test_equal_iou_goes_to_the_later_ground_truth() -> None:
    a, b = cols(0, 20), cols(10, 30)
    between = cols(5, 25)  # IoU 15 / 25 = 0.6 with both a and b
    assert mask_iou_matrix([between], [a, b]).tolist() == [[0.6, 0.6]]
    metrics = check([[a, b]], [([between, a], [0.9, 0.8])])
    # t <= 0.6: `between` takes b (the later), then `a` takes a: recall 1 (3 thresholds);
    # t > 0.6: only `a` matches: recall 0.5 (7 thresholds).
    assert metrics["AR@10"] == pytest.approx((3 * 1 + 7 * 0.5) / 10, abs=1e-15)


def test_equal_scores_keep_the_input_order() -> None:
    truth, junk = cols(0, 30), cols(50, 80)
    assert check([[truth]], [([junk, truth], [0.5, 0.5])], max_dets=(1, 2))["AR@1"] == 0
    assert check([[truth]], [([truth, junk], [0.5, 0.5])], max_dets=(1, 2))["AR@1"] == 1


def test_lvis_option_scores_300_per_image() -> None:
    truth = cols(0, 30)
    masks = [cols(50, 80)] * 300 + [truth]
    scores = np.linspace(1.0, 0.5, 301)
    lvis = evaluate_proposals([[truth]], [(masks, scores)], lvis=True)
    assert lvis["AR@300"] == 0 and "AR@1000" not in lvis and "AR_small@300" in lvis
    coco = check([[truth]], [(masks, scores)], max_dets=(300,))
    assert list(coco) == list(lvis)
    np.testing.assert_array_equal(list(coco.values()), list(lvis.values()))  # NaN == NaN
    wider = evaluate_proposals([[truth]], [(masks, scores)], lvis=True, max_dets=[1000])
    assert wider["AR@1000"] == 1


# ------------------------------------------------------------------------ random cases
def _random_mask(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    if rng.random() < 0.5:
        y0, x0 = int(rng.integers(height)), int(rng.integers(width))
        return block(
            y0, y0 + int(rng.integers(1, height)), x0, x0 + int(rng.integers(1, width)), size
        )
    yy, xx = np.mgrid[:height, :width]
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    ry, rx = rng.uniform(1, height / 2), rng.uniform(1, width / 2)
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def _near(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """A shifted copy, so IoUs spread over all thresholds."""
    shift = int(rng.integers(0, 5))
    return np.roll(
        mask, (int(rng.integers(-shift, shift + 1)), int(rng.integers(-shift, shift + 1))), (0, 1)
    )


def _random_images(seed: int, count: int) -> tuple[list[list[np.ndarray]], list[Any]]:
    rng = np.random.default_rng(seed)
    gts, proposals = [], []
    for i in range(count):
        size = (int(rng.integers(30, 220)), int(rng.integers(30, 220)))
        truth = [] if i == 1 else [_random_mask(rng, size) for _ in range(rng.integers(1, 15))]
        masks = []
        for _ in range(0 if i == 2 else int(rng.integers(1, 60))):
            near = truth and rng.random() < 0.7
            masks.append(
                _near(rng, truth[int(rng.integers(len(truth)))])
                if near
                else _random_mask(rng, size)
            )
        scores = np.round(rng.random(len(masks)), 1)  # many ties
        gts.append(truth)
        proposals.append((masks, scores))
    return gts, proposals


@pytest.mark.parametrize(("seed", "max_dets"), [(0, COCO_DETS), (1, (1, 5, 20)), (2, (3, 300))])
def test_random_images_match_cocoeval(seed: int, max_dets: tuple[int, ...]) -> None:
    gts, proposals = _random_images(seed, 6)
    metrics = check(gts, proposals, max_dets)
    assert metrics["num_images"] == 6 and metrics["num_gt"] == sum(len(g) for g in gts)


def test_masks_as_arrays_rles_and_compressed_rles_agree() -> None:
    gts, proposals = _random_images(3, 4)
    expected = proposal_recall(gts, proposals).recall
    mixed_gts = [np.array(g).reshape(-1, *(g[0].shape if g else (H, W))) for g in gts]
    mixed = []
    for masks, scores in proposals:
        forms = [mask_to_rle(m, compressed=k % 2 == 0) for k, m in enumerate(masks)]
        mixed.append((forms, list(scores)))
    np.testing.assert_array_equal(proposal_recall(mixed_gts, mixed).recall, expected)


# --------------------------------------------------------------------------------- IoU
def test_mask_iou_equals_pycocotools_also_in_small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    size = (37, 53)
    truth = [_random_mask(rng, size) for _ in range(9)] + [np.zeros(size, bool)]
    found = [_near(rng, m) for m in truth] + [np.ones(size, bool), np.zeros(size, bool)]
    expected = np.asarray(
        mask_utils.iou([_encode(m) for m in found], [_encode(m) for m in truth], [0] * len(truth))
    )
    np.testing.assert_array_equal(mask_iou_matrix(found, truth), expected)
    monkeypatch.setattr(mask_iou_module, "_MAX_BLOCK", 3 * (size[0] * size[1] + 1))
    np.testing.assert_array_equal(mask_iou_matrix(found, truth), expected)
    monkeypatch.setattr(mask_iou_module, "_MAX_BLOCK", 1)
    np.testing.assert_array_equal(mask_iou_matrix(found, truth), expected)


# -------------------------------------------------------------------- SegEvery records
def test_records_rank_by_predicted_iou_times_stability() -> None:
    masks = [cols(0, 10), cols(20, 30), cols(40, 50), cols(60, 70)]
    records = [
        {"segmentation": masks[0], "predicted_iou": 0.9, "stability_score": 0.5},  # 0.45
        {"segmentation": mask_to_rle(masks[1]), "predicted_iou": 0.6, "stability_score": 1.0},
        {"segmentation": masks[2], "predicted_iou": 0.5, "stability_score": 0.9},  # 0.45, tie
        {"segmentation": masks[3], "predicted_iou": 0.99, "stability_score": float("nan")},
    ]
    ranked = proposals_from_records(records)
    assert ranked.scores.tolist() == [0.6, 0.45, 0.45, -np.inf]
    assert ranked.masks[0] == records[1]["segmentation"]
    assert (
        ranked.masks[1] is masks[0] and ranked.masks[2] is masks[2] and ranked.masks[3] is masks[3]
    )
    metrics = evaluate_proposals([[masks[1], masks[3]]], [ranked], max_dets=(1, 4))
    assert metrics["AR@1"] == 0.5 and metrics["AR@4"] == 1
    with pytest.raises(InputError, match="stability_score"):
        proposals_from_records([{"segmentation": masks[0], "predicted_iou": 0.9}])


def test_bad_inputs_raise_input_error() -> None:
    a = cols(0, 30)
    cases: list[tuple[Any, Any, dict[str, Any], str]] = [
        ([[a]], [([a], [1.0, 2.0])], {}, "1 masks but 2 scores"),
        ([[a]], [([a], [float("nan")])], {}, "NaN"),
        ([[a]], [([cols(0, 30, 10)], [1.0])], {}, "HxW"),
        ([[a, cols(0, 3, 5, 5)]], [([a], [1.0])], {}, "mask 1 is"),
        ([[a]], [([a], [1.0])], {"max_dets": [0]}, "max_dets"),
        ([[a]], [([a], [1.0])], {"max_dets": []}, "empty"),
        ([[a]], [], {}, "one entry per image"),
        ([[a]], [([{"size": [H, W], "counts": [5, 3]}], [1.0])], {}, "add up to 8"),
        ([[a]], [([np.zeros((2, 2, 2))], [1.0])], {}, "HxW"),
        ([[a]], [([a], [1.0])], {"gt_areas": [[1, 2]]}, "areas"),
    ]
    for gts, proposals, options, message in cases:
        with pytest.raises(InputError, match=message):
            proposal_recall(gts, proposals, **options)
    with pytest.raises(InputError, match="threshold"):
        RecallAccumulator(iou_thresholds=())


# ------------------------------------------------------------------------------- CLI
def test_cli_writes_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ar.json"
    argv = ["eval", "proposals", "--scenes", "2", "--points-per-side", "4"]
    argv += ["--pred-iou-thresh", "0", "--stability-score-thresh", "0"]
    assert main([*argv, "--json", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| size | objects | AR@10 | AR@100 | AR@1000 |" in printed
    assert "s per image to generate" in printed
    result = json.loads(out.read_text())
    assert result["model"] == "segany_shapes" and result["scenes"] == 2
    assert result["protocol"] == "coco" and result["max_dets"] == [10, 100, 1000]
    metrics = result["metrics"]
    for size in ("", "_small", "_medium", "_large"):
        for m in COCO_DETS:
            value = metrics[f"AR{size}@{m}"]
            assert value is None or 0.0 <= value <= 1.0
    assert metrics["num_images"] == 2 and metrics["num_gt"] > 0 and metrics["AR@1000"] is not None
    assert result["masks_per_image"] > 0 and result["seconds_per_image"] > 0


def test_cli_lvis_and_options_before_the_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lvis.json"
    argv = ["eval", "--scenes", "1", "--quiet", "--json", str(out), "proposals", "--lvis"]
    assert main([*argv, "--points-per-side", "2", "--max-dets", "5,300"]) == 0
    assert "| size | objects | AR@5 | AR@300 |" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["scenes"] == 1 and result["protocol"] == "lvis"
    assert set(result["metrics"]) >= {"AR@5", "AR@300", "AR_large@300"}
    assert result["domain"] == "default"


def test_cli_scores_the_shifted_domain(tmp_path: Path) -> None:
    from segany.data.scenes import EVAL_BASE_SEED, SceneConfig, generate_scene, scene_seed

    out = tmp_path / "shifted.json"
    argv = ["eval", "--domain", "shifted", "--scenes", "1", "--quiet", "--json", str(out)]
    assert main([*argv, "proposals", "--points-per-side", "2", "--max-dets", "5"]) == 0
    result = json.loads(out.read_text())
    scene = generate_scene(scene_seed(EVAL_BASE_SEED, 0), SceneConfig(domain="shifted"))
    assert result["domain"] == "shifted" and result["metrics"]["num_gt"] == len(scene)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scenes", "0"], "--scenes: must be at least 1"),
        (["--max-dets", "10,x"], "comma-separated whole numbers"),
        (["--max-dets", "0"], "comma-separated whole numbers"),
        (["--strategy", "random"], "invalid choice"),
        (["--points-per-side", "0"], "must be at least 1"),
        (["--pred-iou-thresh", "nan"], "finite number"),
        (["--box-nms-thresh", "inf"], "finite number"),
        (["--masks-per-box", "2"], "invalid choice"),
        (["--masks-per-box", "1"], "masks_per_box is for strategy='objects'"),
        (["--json", "/no/such/folder/out.json"], "does not exist"),
        (["--model", "nope"], "unknown model 'nope'"),
        (["--model", "sam_vit_b", "--checkpoint", "x.pt"], "not allowed with"),
    ],
)
def test_cli_refuses_bad_arguments(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["eval", "proposals", "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "--clicks", "2", "proposals"], "--clicks is an option of the promptable"),
        (["eval", "--stages", "auto", "proposals"], "--stages is an option of the"),
        (["eval", "--model", "sam_vit_b", "proposals", "--checkpoint", "x.pt"], "not allowed"),
    ],
)
def test_cli_refuses_mixed_arguments(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_reports_a_generator_without_strategies(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class GridOnly:  # a MaskGenerator from before strategy="objects"
        def __init__(self, model: Any, points_per_side: int = 32, output_mode: str = "") -> None:
            raise AssertionError("not reached")

    monkeypatch.setattr(segany, "MaskGenerator", GridOnly)
    assert main(["eval", "proposals", "--strategy", "objects", "--scenes", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--strategy: this segany's MaskGenerator has no 'strategy' option" in err
    assert len(err.splitlines()) == 1
