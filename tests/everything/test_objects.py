"""Object-aware SegEvery: box sources, the objects strategy and its records."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import segany
from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
from segany.errors import InputError
from segany.everything import MaskGenerator
from segany.everything.sources import (
    HeadBoxes,
    JsonBoxes,
    YoloBoxes,
    box_source,
    check_boxes,
    snap_to_border,
)
from segany.models.prompt_head import PromptHead, PromptHeadConfig

NO_FILTERS: dict[str, Any] = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


@pytest.fixture(scope="module")
def model() -> segany.models.Sam:
    return segany.load_model("segany_shapes")


@pytest.fixture(scope="module")
def scene() -> Any:
    return SceneDataset(3, EVAL_BASE_SEED)[2]


def _fixed(boxes: np.ndarray) -> Any:
    def source(image: np.ndarray, predictor: segany.Predictor, name: str | None) -> np.ndarray:
        return boxes

    return source


def test_each_box_gives_the_predictors_single_mask(model: segany.models.Sam, scene: Any) -> None:
    boxes = scene.boxes[:5].astype(np.float64)
    generator = MaskGenerator(
        model, strategy="objects", prompts=_fixed(boxes), masks_per_box=1, **NO_FILTERS
    )
    records = generator.generate(scene.image)
    predictor = segany.Predictor(model)
    predictor.set_image(scene.image)
    expected = predictor.predict(box=boxes, multimask=False)
    assert len(records) == len(boxes)
    pairs = zip(records, boxes, expected.masks, expected.scores, strict=True)
    for record, box, mask, score in pairs:
        x0, y0, x1, y1 = box
        assert record["prompt_box"] == pytest.approx([x0, y0, x1 - x0, y1 - y0])
        assert record["point_coords"][0] == pytest.approx([(x0 + x1) / 2, (y0 + y1) / 2])
        assert record["predicted_iou"] == pytest.approx(float(score[0]), abs=1e-5)
        assert (record["segmentation"] != mask[0]).mean() < 1e-4
        assert record["crop_box"] == [0, 0, scene.image.shape[1], scene.image.shape[0]]
        assert record["area"] == int(record["segmentation"].sum())


def test_each_box_gives_the_predictors_three_masks_by_default(
    model: segany.models.Sam, scene: Any
) -> None:
    boxes = scene.boxes[:4].astype(np.float64)
    generator = MaskGenerator(model, strategy="objects", prompts=_fixed(boxes), **NO_FILTERS)
    assert generator.masks_per_box == 3 and generator.box_nms_thresh == 1.0  # no NMS
    records = generator.generate(scene.image)
    predictor = segany.Predictor(model)
    predictor.set_image(scene.image)
    expected = predictor.predict(box=boxes, multimask=True)
    assert len(records) == 3 * len(boxes)
    # box-major: the three masks of box 0, then of box 1, ... (none filtered, no NMS)
    for index, record in enumerate(records):
        box, k = boxes[index // 3], index % 3
        assert record["prompt_box"][:2] == pytest.approx(box[:2].tolist())
        assert record["predicted_iou"] == pytest.approx(float(expected.scores[index // 3][k]),
                                                        abs=1e-5)  # fmt: skip
        assert (record["segmentation"] != expected.masks[index // 3][k]).mean() < 1e-4
    grid = MaskGenerator(model)
    assert grid.box_nms_thresh == 0.7 and grid.pred_iou_thresh == 0.88  # the official's


def test_filters_apply_to_box_masks(model: segany.models.Sam, scene: Any) -> None:
    boxes = scene.boxes.astype(np.float64)
    everything = MaskGenerator(model, strategy="objects", prompts=_fixed(boxes),
                               **NO_FILTERS).generate(scene.image)  # fmt: skip
    ious = sorted(r["predicted_iou"] for r in everything)
    threshold = ious[len(ious) // 2]
    filtered = MaskGenerator(model, strategy="objects", prompts=_fixed(boxes), box_nms_thresh=1.0,
                             pred_iou_thresh=threshold, stability_score_thresh=0.0)  # fmt: skip
    kept = filtered.generate(scene.image)
    assert len(kept) == sum(1 for v in ious if v > threshold)
    assert all(r["predicted_iou"] > threshold for r in kept)
    # NMS between box masks: duplicated boxes give one mask
    twice = np.concatenate([boxes[:3], boxes[:3]])
    deduped = MaskGenerator(model, strategy="objects", prompts=_fixed(twice), masks_per_box=1,
                            box_nms_thresh=0.7, **NO_FILTERS)  # fmt: skip
    assert len(deduped.generate(scene.image)) <= 3


def test_no_boxes_no_masks(model: segany.models.Sam, scene: Any) -> None:
    generator = MaskGenerator(model, strategy="objects", prompts=_fixed(np.zeros((0, 4))))
    assert generator.generate(scene.image) == []


def test_option_errors(model: segany.models.Sam) -> None:
    with pytest.raises(InputError, match="strategy"):
        MaskGenerator(model, strategy="every")
    with pytest.raises(InputError, match="crop_n_layers"):
        MaskGenerator(model, strategy="objects", prompts=_fixed(np.zeros((0, 4))), crop_n_layers=1)
    with pytest.raises(InputError, match="prompts are for"):
        MaskGenerator(model, prompts="head")
    with pytest.raises(InputError, match="masks_per_box is for"):
        MaskGenerator(model, masks_per_box=1)
    with pytest.raises(InputError, match="masks_per_box must be 1 or 3"):
        MaskGenerator(model, strategy="objects", prompts=_fixed(np.zeros((0, 4))), masks_per_box=2)
    with pytest.raises(InputError, match="head, head:PATH"):
        MaskGenerator(model, strategy="objects", prompts="detector")
    official = segany.load_model("mobile_sam", pretrained=False)
    with pytest.raises(InputError, match="no trained prompt head"):
        MaskGenerator(official, strategy="objects")


def test_json_boxes(model: segany.models.Sam, scene: Any, tmp_path: Path) -> None:
    path = tmp_path / "scene.png"
    Image.fromarray(scene.image).save(path)
    boxes_file = tmp_path / "boxes.json"
    boxes_file.write_text(json.dumps({"scene.png": scene.boxes[:2].tolist()}))
    generator = MaskGenerator(model, strategy="objects", prompts=f"boxes:{boxes_file}",
                              masks_per_box=1, **NO_FILTERS)  # fmt: skip
    records = generator.generate(path)
    assert np.allclose([r["prompt_box"][:2] for r in records], scene.boxes[:2, :2])
    assert generator.generate(scene.image, name="other.png") == []
    boxes_file.write_text(json.dumps({"scene": scene.boxes[:2].tolist()}))  # keys may be stems
    by_stem = MaskGenerator(model, strategy="objects", prompts=f"boxes:{boxes_file}", **NO_FILTERS)
    assert len(by_stem.generate(scene.image, name="scene.png")) == 2 * 3
    with pytest.raises(InputError, match="file name"):
        generator.generate(scene.image)
    boxes_file.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        JsonBoxes(boxes_file)
    boxes_file.write_text(json.dumps({"scene.png": [[5, 5, 1, 1]]}))
    with pytest.raises(InputError, match="x1 >= x0"):
        MaskGenerator(model, strategy="objects", prompts=f"boxes:{boxes_file}").generate(path)
    with pytest.raises(InputError, match="cannot read"):
        JsonBoxes(tmp_path / "missing.json")


def test_check_and_snap_boxes() -> None:
    boxes = check_boxes([[-5, 3, 30, 250]], (100, 50), "test")
    assert boxes.tolist() == [[0, 3, 30, 99]]
    with pytest.raises(InputError, match="finite"):
        check_boxes([[0, 0, np.nan, 1]], (10, 10), "test")
    with pytest.raises(InputError, match="list of"):
        check_boxes([[0, 0, 1]], (10, 10), "test")
    snapped = snap_to_border(np.array([[15.0, 30.0, 85.0, 70.0]]), (100, 100), 20)
    assert snapped.tolist() == [[0, 30, 99, 70]]


def test_head_boxes_are_in_image_pixels(model: segany.models.Sam) -> None:
    torch.manual_seed(0)
    head = PromptHead(PromptHeadConfig(in_chans=128, hidden=8))
    with torch.no_grad():
        head.prior.fill_(3.0)  # every peak passes
        head.boxes.bias.view(-1, 4)[:, 2:] = 2.0  # boxes of e^2 = 7 cells: they overlap
    image = np.zeros((300, 200, 3), dtype=np.uint8)
    predictor = segany.Predictor(model)
    predictor.set_image(image)
    boxes = HeadBoxes(head, conf=0.0, max_boxes=50, nms_thresh=1.0)(image, predictor, None)
    assert boxes.shape == (50, 4)
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 199).all() and (boxes[:, 3] <= 299).all()
    assert (boxes[:, 2] >= boxes[:, 0]).all()
    fewer = HeadBoxes(head, conf=0.0, max_boxes=50, nms_thresh=0.3)(image, predictor, None)
    assert len(fewer) < 50


class _FakeBoxes:
    def __init__(self, xyxy: list[list[float]], conf: list[float]) -> None:
        self.xyxy = torch.tensor(xyxy)
        self.conf = torch.tensor(conf)

    def __len__(self) -> int:
        return len(self.conf)


def test_yolo_boxes_use_mobilesamv2_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[dict[str, Any]] = []

    class FakeYOLO:
        def __init__(self, path: str) -> None:
            self.path = path

        def __call__(self, image: np.ndarray, **kwargs: Any) -> list[Any]:
            calls.append(kwargs)
            result = types.SimpleNamespace()
            result.boxes = _FakeBoxes([[5, 40, 60, 90], [30, 30, 40, 40]], [0.5, 0.9])
            return [result]

    monkeypatch.setitem(sys.modules, "ultralytics", types.SimpleNamespace(YOLO=FakeYOLO))
    with pytest.raises(InputError, match="does not exist"):
        YoloBoxes(tmp_path / "missing.pt")
    weights = tmp_path / "yolo.pt"
    weights.write_bytes(b"x")
    source = box_source(f"yolo:{weights}")
    boxes = source(np.zeros((100, 120, 3), dtype=np.uint8), None, None)  # type: ignore[arg-type]
    assert calls[0]["conf"] == 0.4 and calls[0]["iou"] == 0.9 and calls[0]["max_det"] == 320
    assert boxes.tolist() == [[30, 30, 40, 40], [0, 40, 60, 99]]  # by confidence; snapped


def test_yolo_without_ultralytics_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ultralytics", None)
    with pytest.raises(InputError, match="pip install ultralytics"):
        YoloBoxes("yolo.pt")


def test_cli_objects_with_a_boxes_file(scene: Any, tmp_path: Path, capsys: Any) -> None:
    from segany.cli.main import main

    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(scene.image).save(folder / "sub" / "a.png")
    Image.fromarray(scene.image).save(folder / "b.png")
    boxes_file = tmp_path / "boxes.json"
    boxes_file.write_text(json.dumps({"sub/a.png": scene.boxes[:3].tolist(),
                                      "b": scene.boxes[:1].tolist()}))  # fmt: skip
    out = tmp_path / "out"
    argv = ["everything", str(folder), "-o", str(out), "--strategy", "objects", "--prompts",
            f"boxes:{boxes_file}", "--pred-iou-thresh", "0", "--stability-score-thresh", "0",
            "--masks-per-box", "1", "--box-nms-thresh", "0.7", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    a = json.loads((out / "sub" / "a.json").read_text())
    b = json.loads((out / "b.json").read_text())
    assert 1 <= len(a["annotations"]) <= 3 and len(b["annotations"]) == 1
    capsys.readouterr()
    argv = ["everything", str(folder), "-o", str(tmp_path / "o2"), "--strategy", "grid",
            "--prompts", "head"]  # fmt: skip
    assert main(argv) == 2
    assert "--strategy objects" in capsys.readouterr().err
    assert main(["everything", str(folder), "-o", str(tmp_path / "o3"), "--strategy", "grid",
                 "--masks-per-box", "1", "--quiet"]) == 2  # fmt: skip
    assert "masks_per_box is for strategy='objects'" in capsys.readouterr().err


def test_cli_default_strategy_is_objects_for_the_bundled_model(
    scene: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--strategy auto`` (the default): the bundled model has a published prompt head, so
    its boxes are used (the default grid's filters keep none of this model's masks); a
    model loaded from a checkpoint file, or without a head, gets the grid."""
    from segany.cli import everything as everything_cli
    from segany.cli.main import main

    Image.fromarray(scene.image).save(tmp_path / "scene.png")
    out = tmp_path / "out"
    assert main(["everything", str(tmp_path / "scene.png"), "-o", str(out), "--quiet"]) == 0
    annotations = json.loads((out / "scene.json").read_text())["annotations"]
    assert len(annotations) >= 3
    strategies: list[str] = []

    class Recording(MaskGenerator):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            strategies.append(self.strategy)

    monkeypatch.setattr(everything_cli, "MaskGenerator", Recording)
    weights = segany.loading.bundled_path(segany.get_spec("segany_shapes").weights.filename)
    for extra in ([], ["--checkpoint", str(weights)], ["--strategy", "grid"]):
        out = tmp_path / f"run{len(strategies)}"
        argv = ["everything", str(tmp_path / "scene.png"), "-o", str(out), "--quiet", *extra]
        assert main(argv) == 0
    assert strategies == ["objects", "grid", "grid"]
    assert everything_cli._has_prompt_head("segany_shapes")
    assert not everything_cli._has_prompt_head("sam_vit_b")
    assert not everything_cli._has_prompt_head(None)  # a model built by hand


def test_cli_trains_a_prompt_head(tmp_path: Path, capsys: Any) -> None:
    from segany.cli.main import main

    out = tmp_path / "head"
    argv = ["train", "prompt-head", "-o", str(out), "--scenes", "3", "--epochs", "2",
            "--eval-scenes", "2", "--mode", "fast", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 3 and 0 <= summary["recall@0.5"] <= 1
    assert len((out / "log.jsonl").read_text().splitlines()) == 2
    capsys.readouterr()
    assert main(argv) == 2  # never overwrites without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    scene_image = SceneDataset(1, EVAL_BASE_SEED)[0].image
    Image.fromarray(scene_image).save(tmp_path / "x.png")
    records = MaskGenerator(
        segany.load_model("segany_shapes"), strategy="objects",
        prompts=f"head:{out / 'prompt_head.safetensors'}",
    ).generate(tmp_path / "x.png")  # fmt: skip
    assert isinstance(records, list)
