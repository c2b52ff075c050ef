"""Promptable evaluation: rows, baselines and the summary table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import segany
from segany import weights as weights_io
from segany.cli.eval import format_table
from segany.cli.main import main
from segany.data.masks import corrective_click, interior_point, interior_points
from segany.data.scenes import EVAL_BASE_SEED, SceneConfig, generate_scene, scene_seed
from segany.eval import evaluate_promptable, summarize
from segany.eval.promptable import box_fill, box_masks_of, iou, prompt_boxes
from segany.models import build_sam
from segany.refine import StagedPredictor, Stages
from segany.refine.graph_cut import GraphCut
from segany.refine.ranker import MaskRanker, RankerConfig
from segany.session import ClickSession
from segany.weights import save_state_dict_file
from tests.helpers import TINY


def test_iou_and_box_fill() -> None:
    mask = np.zeros((20, 30), bool)
    mask[5:10, 3:13] = True
    assert iou(mask, mask) == 1.0
    assert iou(mask, ~mask) == 0.0
    assert iou(box_fill(np.array([3, 5, 12, 9]), mask.shape), mask) == 1.0  # inclusive maxima


def test_interior_point_is_deepest() -> None:
    mask = np.zeros((40, 40), bool)
    mask[10:31, 5:16] = True  # 21 tall, 11 wide: the centre column is x = 10
    x, y = interior_point(mask)
    assert x == 10.5 and 15 <= y <= 26
    ring = np.zeros((40, 40), bool)
    ring[5:35, 5:35] = True
    ring[12:28, 12:28] = False
    x, y = interior_point(ring)
    assert ring[int(y), int(x)]


def test_centre_click_of_a_strip_or_curve_is_its_middle() -> None:
    """A strip of even width is equally deep all along its middle: the centre click is
    the tie nearest the centroid, not the first in raster order (the strip's top end)."""
    strip = np.zeros((60, 60), bool)
    strip[5:55, 20:26] = True  # 6 wide, 50 tall: middle at y = 30
    arc = np.zeros((80, 80), bool)
    yy, xx = np.mgrid[:80, :80]
    radius = np.hypot(yy - 70, xx - 40)
    arc[(radius >= 30) & (radius < 36) & (yy < 70)] = True  # a half ring, 6 wide
    for mask in (strip, arc, strip.T):
        ys, xs = np.nonzero(mask)
        for x, y in (interior_point(mask), interior_points(torch.from_numpy(mask)[None])[0]):
            assert mask[int(y), int(x)]
            # in the middle third of the shape's extent, along its longer side
            if np.ptp(ys) >= np.ptp(xs):
                assert ys.min() + np.ptp(ys) / 3 <= y <= ys.max() - np.ptp(ys) / 3, (x, y)
            else:
                assert xs.min() + np.ptp(xs) / 3 <= x <= xs.max() - np.ptp(xs) / 3, (x, y)


def test_corrective_click_corrects_the_larger_error() -> None:
    truth = np.zeros((40, 40), bool)
    truth[5:35, 5:35] = True
    assert corrective_click(truth, truth.copy()) is None
    half = truth.copy()
    half[5:35, 20:35] = False  # the right half missed: a positive click in it
    (x, y), label = corrective_click(truth, half)
    assert label == 1 and truth[int(y), int(x)] and not half[int(y), int(x)]
    spill = truth.copy()
    spill[0:40, 0:5] = True  # 160 px wrongly included, nothing missed: a negative click
    (x, y), label = corrective_click(truth, spill)
    assert label == 0 and spill[int(y), int(x)] and not truth[int(y), int(x)]


class _Recording(segany.Predictor):
    """A predictor that notes whether each decoding of points with mask input (``calls``)
    and of boxes (``box_calls``) asked for 3 masks."""

    calls: list[bool]
    box_calls: list[bool]

    def predict_low_res(self, coords, labels, boxes=None, mask_input=None, multimask=True):  # type: ignore[no-untyped-def]
        if mask_input is not None:
            self.calls.append(multimask)
        if boxes is not None:
            self.box_calls.append(multimask)
        return super().predict_low_res(coords, labels, boxes, mask_input, multimask)


@pytest.mark.parametrize("click_masks", [1, 3])
def test_corrective_clicks_answer_with_the_masks_asked_for(click_masks: int) -> None:
    predictor = _Recording(build_sam(TINY))
    predictor.calls, predictor.box_calls = [], []
    scene = generate_scene(5, SceneConfig(size=(64, 80), min_objects=2, max_objects=3))
    rows = evaluate_promptable(predictor, [scene], clicks=2, click_masks=click_masks)
    assert predictor.calls and set(predictor.calls) == {click_masks == 3}
    assert all(0.0 <= row["clicks_2"] <= 1.0 for row in rows)
    with pytest.raises(ValueError, match="click_masks must be 1 or 3"):
        evaluate_promptable(predictor, [scene], clicks=1, click_masks=2)


@pytest.mark.parametrize("merge", [True, False])
def test_corrective_clicks_follow_a_click_session(merge: bool) -> None:
    """Corrective clicks go through a ClickSession: merged into the previous mask, or
    (``merge=False``) the predictor's best-scored answer with the previous logits."""
    torch.manual_seed(0)
    predictor = segany.Predictor(build_sam(TINY))
    scene = generate_scene(5, SceneConfig(size=(64, 80), min_objects=2, max_objects=3))
    rows = evaluate_promptable(predictor, [scene], clicks=2, merge=merge)
    for row, truth in zip(rows, scene.masks, strict=True):
        session = ClickSession(predictor, merge=merge).click(*interior_point(truth))
        points, labels = [interior_point(truth)], [1]
        mask, logits = session.mask, session.logits
        for k in (1, 2):
            assert mask is not None
            click = corrective_click(truth, mask)
            if click is None:
                break
            if merge:
                mask = session.click(*click[0], positive=bool(click[1])).mask
            else:
                points.append(click[0])
                labels.append(click[1])
                assert logits is not None
                out = predictor.predict(points=points, labels=labels, mask_input=logits[None])
                best = int(np.argmax(out.scores))
                mask, logits = out.masks[best], out.low_res_logits[best]
            assert row[f"clicks_{k}"] == iou(mask, truth)


def test_boxes_answer_with_three_masks_when_a_box_ranker_ranks_them() -> None:
    """``box_masks`` None: 3 masks per box, the best-scored kept, when the predictor has
    a box ranker and a graph cut (which the ranker reads), else the single mask."""
    torch.manual_seed(0)
    model = build_sam(TINY)
    scene = generate_scene(5, SceneConfig(size=(64, 80), min_objects=2, max_objects=3))
    ranker = MaskRanker(RankerConfig(hidden=4, kind="boxes"))
    for stages, asked, expected in [
        (None, None, {False}),  # the network alone
        (Stages(graph_cut=GraphCut(), box_ranker=ranker), None, {True}),
        (Stages(box_ranker=ranker), None, {False}),  # no cut: nothing to rank
        (Stages(graph_cut=GraphCut(), box_ranker=ranker), 1, {False}),
        (None, 3, {True}),
    ]:
        recording = _Recording(model)
        recording.calls, recording.box_calls = [], []
        predictor: Any = recording if stages is None else StagedPredictor(recording, stages)
        assert box_masks_of(predictor, asked) == (3 if expected == {True} else 1)
        rows = evaluate_promptable(predictor, [scene], clicks=0, box_masks=asked)
        assert set(recording.box_calls) == expected and len(recording.box_calls) >= 2
        assert all(0.0 <= row["box"] <= 1.0 for row in rows)
    with pytest.raises(ValueError, match="box_masks must be 1 or 3"):
        evaluate_promptable(predictor, [scene], clicks=0, box_masks=2)


def test_three_box_masks_keep_the_best_scored() -> None:
    """With 3 masks per box the row's IoU is that of the mask the predictor scores best."""
    torch.manual_seed(0)
    predictor = segany.Predictor(build_sam(TINY))
    scene = generate_scene(7, SceneConfig(size=(64, 80), min_objects=2, max_objects=3))
    rows = evaluate_promptable(predictor, [scene], clicks=0, box_masks=3)
    boxes, _ = prompt_boxes(scene, np.random.default_rng(0))
    three = predictor.predict(box=boxes, multimask=True)
    for row, masks, scores, truth in zip(rows, three.masks, three.scores, scene.masks, strict=True):
        assert row["box"] == iou(masks[int(np.argmax(scores))], truth)


def test_evaluate_and_summarize() -> None:
    predictor = segany.Predictor(build_sam(TINY))
    scene = generate_scene(5, SceneConfig(size=(64, 80), min_objects=2, max_objects=3))
    rows = evaluate_promptable(predictor, [scene], clicks=2)
    assert len(rows) == len(scene.masks)
    for row in rows:
        for key in ("centre", "centre_oracle", "random", "box", "noisy_box", "clicks_1"):
            assert 0.0 <= row[key] <= 1.0
        assert row["centre_oracle"] >= row["centre"]
    table = summarize(rows)
    assert table["all"]["objects"] == len(rows)
    assert sum(table[b]["objects"] for b in ("small", "medium", "large")) == len(rows)
    text = format_table(table)
    header = text.splitlines()[0]
    assert header.startswith("| size | objects | centre |") and "clicks_2" in header
    assert [line.split("|")[1].strip() for line in text.splitlines()[2:]] == [
        "all", "small", "medium", "large",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scenes", "0"], "--scenes: must be at least 1"),
        (["--clicks", "-1"], "--clicks: must be at least 0"),
        (["--click-masks", "2"], "--click-masks: invalid choice"),
        (["--box-masks", "2"], "--box-masks: invalid choice"),
        (["--stages", "/no/such.json"], "--stages: /no/such.json is not 'none', 'auto' or a"),
        (["--box-ranker", "none"], "--box-ranker was removed in segany 0.2.0"),
        (["--stages", "auto", "proposals"], "--stages is an option of the promptable"),
        (["--box-masks", "3", "proposals"], "--box-masks is an option of the promptable"),
        (["--scenes", "many"], "expected a whole number"),
        (["--model", "nope"], "unknown model 'nope'"),
        (["--checkpoint", "/no/such/file.pt"], "checkpoint not found"),
        (["--json", "/no/such/folder/out.json"], "does not exist"),
        (["--model", "sam_vit_b", "--checkpoint", "x.pt"], "not allowed with"),
    ],
)
def test_cli_refuses_bad_arguments(capsys, argv, message) -> None:
    assert main(["eval", "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_writes_table_and_json(tmp_path: Path, capsys, monkeypatch) -> None:
    checkpoint = tmp_path / "tiny.safetensors"
    save_state_dict_file(build_sam(TINY).state_dict(), checkpoint)

    def load_tiny(name=None, checkpoint=None, **kwargs):  # TINY is not a registered model
        model = build_sam(TINY)
        model.load_state_dict(weights_io.load_state_dict_file(checkpoint))
        return model

    monkeypatch.setattr(segany, "load_model", load_tiny)
    out = tmp_path / "eval.json"
    argv = ["eval", "--checkpoint", str(checkpoint), "--scenes", "2", "--clicks", "1"]
    assert main([*argv, "--json", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| size | objects | centre |" in printed and "clicks_1" in printed
    written = json.loads(out.read_text())
    table = written["table"]
    assert set(table) == {"all", "small", "medium", "large"}
    assert 0.0 <= table["all"]["box"] <= 1.0 and table["all"]["objects"] > 0
    assert written["box_masks"] == 1 and written["stages"] == []  # the network alone
    assert "mask stages: none" in printed
    assert written["merge"] is True
    assert main([*argv, "--json", str(out), "--quiet", "--no-merge"]) == 0
    assert json.loads(out.read_text())["merge"] is False
    assert main([*argv, "--json", str(out), "--quiet", "--box-masks", "3"]) == 0
    assert json.loads(out.read_text())["box_masks"] == 3
    assert json.loads(out.read_text())["domain"] == "default"
    assert main([*argv, "--json", str(out), "--quiet", "--domain", "shifted"]) == 0
    assert "held-out scenes (shifted domain)" in capsys.readouterr().out
    written = json.loads(out.read_text())
    shifted = SceneConfig(domain="shifted")
    count = sum(len(generate_scene(scene_seed(EVAL_BASE_SEED, i), shifted)) for i in range(2))
    assert written["domain"] == "shifted" and written["table"]["all"]["objects"] == count
