"""Tests of the ``segany`` command line: ``segment``, ``models``, errors and the entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import segany
from segany.cli import segment as segment_cli
from segany.cli.main import main
from segany.errors import CheckpointError, DownloadError, InputError
from segany.refine.graph_cut import GraphCut
from segany.refine.ranker import MaskRanker, RankerConfig
from segany.weights import save_state_dict_file

H, W = 48, 64


@pytest.fixture
def image_path(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(path)
    return path


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The single stderr line of a failed run (asserts there is exactly one)."""
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("segany: error: "), err
    return lines[0]


# ----------------------------------------------------------------------- fake predictor


@dataclass
class _FakeResult:
    masks: np.ndarray
    scores: np.ndarray
    low_res_logits: np.ndarray


@dataclass
class _FakeModel:
    name: str = "fake_sam"
    is_random: bool = False


@dataclass
class _FakePredictor:
    """Stands in for segany.Predictor: each prompt yields masks of growing squares."""

    model: Any
    calls: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None

    def set_image(self, image: np.ndarray) -> None:
        assert image.shape == (H, W, 3) and image.dtype == np.uint8
        self.shape = image.shape[:2]

    def _one(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        masks = np.zeros((count, *self.shape), dtype=bool)
        for i in range(count):
            masks[i, 5 : 10 + 5 * i, 8 : 20 + 5 * i] = True
        return masks, np.linspace(0.5, 0.9, count)[::-1].copy()

    def predict(self, **kwargs: Any) -> _FakeResult:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        count = 3 if kwargs["multimask"] else 1
        box = kwargs.get("box")
        if box is not None and np.asarray(box).ndim == 2:
            parts = [self._one(count) for _ in range(len(box))]
            masks = np.stack([m for m, _ in parts])
            scores = np.stack([s for _, s in parts])
        else:
            masks, scores = self._one(count)
        return _FakeResult(masks, scores, np.zeros(masks.shape[:-2] + (4, 4), np.float32))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace segany.load_model and segany.Predictor; returns the recorded state."""
    state: dict[str, Any] = {"loads": [], "model": _FakeModel(), "error": None}

    def load_model(
        name: str | None = None, checkpoint: str | Path | None = None, mode: str = "exact"
    ) -> Any:
        state["loads"].append((name, checkpoint))
        state["mode"] = mode
        if state.get("load_error") is not None:
            raise state["load_error"]
        return state["model"]

    def predictor(model: Any) -> _FakePredictor:
        pred = _FakePredictor(model, error=state["error"])
        state["predictor"] = pred
        return pred

    def staged(predictor: Any, stages: Any) -> Any:
        state["stages"] = stages
        return predictor

    monkeypatch.setattr(segany, "load_model", load_model)
    monkeypatch.setattr(segany, "Predictor", predictor)
    monkeypatch.setattr(segment_cli, "staged", staged)
    return state


# --------------------------------------------------------------------- top-level parser


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "segment an image from point and box prompts" in out
    assert "list the registered models" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("segany ")


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "required" in _error_line(capsys)


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "frobnicate" in _error_line(capsys)


def test_segment_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["segment", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--point", "--box", "--model", "--checkpoint", "--single-mask", "-o"):
        assert option in out


# ------------------------------------------------------------------------ parse errors


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--point", "10"], "expected X,Y or X,Y,LABEL"),
        (["--point", "1,2,1,4"], "4 values"),
        (["--point", "a,2"], "'a' in 'a,2' is not a finite number"),
        (["--point", "nan,2"], "not a finite number"),
        (["--point", "1,2,5"], "label must be 1 (foreground) or 0 (background), got '5'"),
        (["--point", "1,2,x"], "label must be 1"),
        (["--box", "1,2,3"], "expected X0,Y0,X1,Y1"),
        (["--box", "10,10,5,20"], "X0 < X1 and Y0 < Y1"),
        (["--box", "1,2,3,four"], "not a finite number"),
        (["--point", "1,2"], "-o"),  # no output directory
    ],
)
def test_bad_prompt_syntax_exits_2_with_one_line(
    args: list[str],
    expected: str,
    image_path: Path,
    tmp_path: Path,
    fake: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    extra = [] if expected == "-o" else ["-o", str(tmp_path / "out")]
    assert main(["segment", str(image_path), *args, *extra]) == 2
    assert expected in _error_line(capsys)
    assert fake["loads"] == []


def test_no_prompt_is_an_error(
    image_path: Path, tmp_path: Path, fake: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["segment", str(image_path), "-o", str(tmp_path / "out")]) == 2
    assert "at least one prompt is required" in _error_line(capsys)
    assert fake["loads"] == []


# ------------------------------------------------------------------------ input errors


def test_unreadable_image_fails_before_loading_the_model(
    tmp_path: Path, fake: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    assert main(["segment", str(bad), "--point", "1,1", "-o", str(tmp_path / "out")]) == 2
    line = _error_line(capsys)
    assert str(bad) in line and "not an image" in line
    assert fake["loads"] == []
    assert not (tmp_path / "out").exists()


def test_missing_image(tmp_path: Path, fake: dict[str, Any], capsys: pytest.CaptureFixture[str]):
    missing = tmp_path / "nope.jpg"
    assert main(["segment", str(missing), "--point", "1,1", "-o", str(tmp_path / "o")]) == 2
    assert f"'{missing}' does not exist" in _error_line(capsys)


def test_missing_checkpoint(
    image_path: Path, tmp_path: Path, fake: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "weights.pth"
    args = ["segment", str(image_path), "--point", "1,1", "--checkpoint", str(ckpt)]
    assert main([*args, "-o", str(tmp_path / "out")]) == 2
    line = _error_line(capsys)
    assert str(ckpt) in line and "does not exist" in line
    assert fake["loads"] == []


def test_missing_checkpoint_with_real_loader(
    image_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "weights.pth"
    args = ["segment", str(image_path), "--box", "1,1,9,9", "--checkpoint", str(ckpt)]
    assert main([*args, "-o", str(tmp_path / "out")]) == 2
    assert str(ckpt) in _error_line(capsys)


@pytest.mark.parametrize(
    "error",
    [
        CheckpointError("checkpoint x.pth does not fit model 'sam_vit_b'"),
        DownloadError("cannot download https://example.invalid/w.pt: the connection timed out"),
        InputError("unknown model 'nope'; known models: mobile_sam"),
    ],
)
def test_model_loading_errors_propagate(
    error: Exception,
    image_path: Path,
    tmp_path: Path,
    fake: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake["load_error"] = error
    args = ["segment", str(image_path), "--point", "1,1", "--model", "nope"]
    assert main([*args, "-o", str(tmp_path / "out")]) == 2
    assert _error_line(capsys) == f"segany: error: {error}"


def test_prompt_outside_image_message_propagates(
    image_path: Path, tmp_path: Path, fake: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    message = "point (500, 5) lies outside the 64x48 image"
    fake["error"] = InputError(message)
    args = ["segment", str(image_path), "--point", "500,5", "-o", str(tmp_path / "out")]
    assert main(args) == 2
    assert _error_line(capsys) == f"segany: error: {message}"


def test_multiline_messages_become_one_line(
    image_path: Path, tmp_path: Path, fake: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    fake["error"] = InputError("first part\n  second part\n")
    args = ["segment", str(image_path), "--point", "5,5", "-o", str(tmp_path / "out")]
    assert main(args) == 2
    assert _error_line(capsys) == "segany: error: first part second part"


def test_unwritable_output_is_one_line(
    image_path: Path, tmp_path: Path, fake: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    args = ["segment", str(image_path), "--point", "5,5", "-o", str(blocker / "out")]
    assert main(args) == 2
    assert str(blocker) in _error_line(capsys)


def test_keyboard_interrupt_exits_130(
    image_path: Path, tmp_path: Path, fake: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    fake["error"] = KeyboardInterrupt()
    args = ["segment", str(image_path), "--point", "5,5", "-o", str(tmp_path / "out")]
    assert main(args) == 130
    assert "Traceback" not in capsys.readouterr().err


# ------------------------------------------------------------------- fake-model success


def test_points_write_masks_overlay_and_json(
    image_path: Path, tmp_path: Path, fake: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "a" / "b"
    args = ["segment", str(image_path), "--point", "10,12", "--point", "30.5,20,0"]
    assert main([*args, "--model", "mobile_sam", "-o", str(out)]) == 0
    assert fake["loads"] == [("mobile_sam", None)]
    call = fake["predictor"].calls[0]
    np.testing.assert_array_equal(call["points"], [[10, 12], [30.5, 20]])
    np.testing.assert_array_equal(call["labels"], [1, 0])
    assert call["box"] is None and call["multimask"] is True
    assert sorted(p.name for p in out.iterdir()) == [
        "mask_0.png",
        "mask_1.png",
        "mask_2.png",
        "overlay.png",
        "result.json",
    ]
    result = json.loads((out / "result.json").read_text())
    assert result["image"] == str(image_path)
    assert (result["width"], result["height"], result["model"]) == (W, H, "fake_sam")
    assert result["prompts"] == {"points": [[10, 12], [30.5, 20]], "labels": [1, 0], "boxes": []}
    first = result["masks"][0]
    assert first["file"] == "mask_0.png" and first["best"] is True
    assert first["area"] == 5 * 12 and first["bbox_xywh"] == [8, 5, 12, 5]
    assert first["score"] == pytest.approx(0.9)
    with Image.open(out / "mask_1.png") as im:
        assert im.mode == "L" and im.size == (W, H)
    with Image.open(out / "overlay.png") as im:
        assert im.mode == "RGB" and im.size == (W, H)
    captured = capsys.readouterr()
    assert "wrote 3 mask(s)" in captured.out and captured.err == ""


def test_single_box_and_single_mask(image_path: Path, tmp_path: Path, fake: dict[str, Any]) -> None:
    out = tmp_path / "out"
    args = ["segment", str(image_path), "--box", "2,3,40,30", "--single-mask", "-o", str(out)]
    assert main(args) == 0
    call = fake["predictor"].calls[0]
    np.testing.assert_array_equal(call["box"], [2, 3, 40, 30])
    assert call["points"] is None and call["multimask"] is False
    result = json.loads((out / "result.json").read_text())
    assert [m["file"] for m in result["masks"]] == ["mask_0.png"]
    assert result["masks"][0]["box"] == 0


def test_several_boxes_use_box_prefixes(
    image_path: Path, tmp_path: Path, fake: dict[str, Any]
) -> None:
    out = tmp_path / "out"
    args = ["segment", str(image_path), "--box", "2,3,40,30", "--box", "5,5,20,20"]
    assert main([*args, "--point", "10,10", "-o", str(out)]) == 0
    call = fake["predictor"].calls[0]
    assert np.asarray(call["box"]).shape == (2, 4)
    result = json.loads((out / "result.json").read_text())
    files = [m["file"] for m in result["masks"]]
    assert files == [f"box{b}_mask_{i}.png" for b in range(2) for i in range(3)]
    assert [m["box"] for m in result["masks"] if m["best"]] == [0, 1]
    assert all((out / name).is_file() for name in files)


def test_random_weights_note(
    image_path: Path, tmp_path: Path, fake: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    fake["model"] = _FakeModel(is_random=True)
    assert main(["segment", str(image_path), "--point", "5,5", "-o", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "random weights" in err[0]


def test_checkpoint_only_lets_the_loader_infer_the_model(
    image_path: Path, tmp_path: Path, fake: dict[str, Any]
) -> None:
    ckpt = tmp_path / "w.pth"
    ckpt.write_bytes(b"x")
    args = ["segment", str(image_path), "--point", "5,5", "--checkpoint", str(ckpt)]
    assert main([*args, "-o", str(tmp_path / "o")]) == 0
    assert fake["loads"] == [(None, ckpt)]


def test_mask_stages_are_opt_in(
    image_path: Path, tmp_path: Path, fake: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """No stages by default; --stages FILE gives the file's; --stages auto needs weights
    with registered stages (the fake model's have none)."""
    args = ["segment", str(image_path), "--point", "5,5", "-o", str(tmp_path / "o")]
    assert main(args) == 0 and fake["stages"] is None
    assert json.loads((tmp_path / "o" / "result.json").read_text())["stages"] == []
    ranker_file = tmp_path / "box_ranker.safetensors"
    save_state_dict_file(MaskRanker(RankerConfig(hidden=4, kind="boxes")).export(), ranker_file)
    stages_file = tmp_path / "stages.json"
    stages_file.write_text(json.dumps({"graph_cut": True, "box_ranker": ranker_file.name}))
    capsys.readouterr()
    assert main([*args, "--stages", str(stages_file)]) == 0
    stages = fake["stages"]
    assert isinstance(stages.graph_cut, GraphCut) and stages.box_ranker.config.hidden == 4
    assert stages.refiner is None and stages.ranker is None and stages.zoom is None
    assert "mask stages after the network: graph cut + box ranker" in capsys.readouterr().err
    assert main([*args, "--stages", "auto"]) == 2
    assert "no mask stages are registered for the weights" in _error_line(capsys)
    stages_file.write_text(json.dumps({"ranker": ranker_file.name}))  # a box ranker as ranker
    assert main([*args, "--stages", str(stages_file)]) == 2
    assert "is not a mask ranker: it is a 'boxes' ranker" in _error_line(capsys)
    assert main([*args, "--stages", str(tmp_path / "missing.json")]) == 2
    assert "is not 'none', 'auto' or a stages file" in _error_line(capsys)


@pytest.mark.parametrize(
    "flag", [["--refiner", "none"], ["--graph-cut", "on"], ["--ranker", "auto"], ["--zoom"],
             ["--box-ranker", "x.safetensors"]],
)  # fmt: skip
def test_removed_stage_flags_name_their_replacement(
    image_path: Path, tmp_path: Path, fake: dict[str, Any], capsys: pytest.CaptureFixture[str],
    flag: list[str],
) -> None:  # fmt: skip
    args = ["segment", str(image_path), "--point", "5,5", "-o", str(tmp_path / "o"), *flag]
    assert main(args) == 2
    line = _error_line(capsys)
    assert f"{flag[0]} was removed in segany 0.2.0" in line and "--stages auto" in line
    assert fake["loads"] == []  # refused before the model loads


# ----------------------------------------------------------------------------- models


def test_models_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SEGANY_CACHE", str(tmp_path))
    spec = segany.get_spec("mobile_sam")
    assert spec.weights is not None
    (tmp_path / spec.weights.filename).write_bytes(b"")
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "PARAMS", "ENCODER", "WEIGHTS", "LICENSE", "CACHED", "URL"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert {s.name for s in segany.list_models()} == set(rows)
    assert f"yes ({tmp_path / spec.weights.filename})" in rows["mobile_sam"]
    assert spec.weights.url in rows["mobile_sam"]
    assert "TinyViT" in rows["mobile_sam"] and "38.8 MiB" in rows["mobile_sam"]
    assert "  no  " in rows["sam_vit_b"]


# --------------------------------------------------------------- real model, end to end


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MobileSAM checkpoint with random weights (no download needed)."""
    from segany.weights import save_state_dict_file

    model = segany.load_model("mobile_sam", pretrained=False)
    path = tmp_path_factory.mktemp("ckpt") / "mobile_sam_random.safetensors"
    save_state_dict_file(model.state_dict(), path)
    return path


def test_real_predictor_end_to_end(
    image_path: Path,
    tmp_path: Path,
    random_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    args = ["segment", str(image_path), "--checkpoint", str(random_checkpoint), "-o", str(out)]
    args += ["--point", "20,15", "--point", "40,30,0", "--box", "5,5,50,40"]
    assert main(args) == 0, capsys.readouterr().err
    result = json.loads((out / "result.json").read_text())
    assert result["model"] == "mobile_sam"  # inferred from the checkpoint
    assert (result["width"], result["height"]) == (W, H)
    assert [m["file"] for m in result["masks"]] == ["mask_0.png", "mask_1.png", "mask_2.png"]
    assert sum(m["best"] for m in result["masks"]) == 1
    for entry in result["masks"]:
        with Image.open(out / entry["file"]) as im:
            mask = np.asarray(im) == 255
        assert mask.shape == (H, W) and int(mask.sum()) == entry["area"]
        assert isinstance(entry["score"], float)
    with Image.open(out / "overlay.png") as im:
        assert im.size == (W, H)
    captured = capsys.readouterr()
    assert "wrote 3 mask(s)" in captured.out
    assert captured.err == ""  # checkpoint weights count as trained: no random-weights note


# -------------------------------------------------------------------------- entry point


def test_entry_point_in_a_subprocess() -> None:
    src = str(Path(segany.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "segany.cli", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "segment" in proc.stdout and "models" in proc.stdout
