"""Training the mask refiner and the mask ranker on a frozen model, and their CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

import segany
from segany import refine
from segany.cli.main import main
from segany.errors import InputError
from segany.models import build_sam
from segany.refine.refiner import MaskRefiner, RefinerConfig
from segany.refine.train_refiner import RefinerTrainConfig, train_refiner
from segany.weights import save_state_dict_file
from tests.helpers import TINY

SMALL = {"images_per_step": 1, "boxes_per_image": 2, "sessions_per_image": 1, "clicks": 1}


def test_training_moves_the_refiner_and_logs_both_prompt_kinds() -> None:
    torch.manual_seed(0)
    model = build_sam(TINY)
    rows: list[dict[str, float]] = []
    config = RefinerTrainConfig(steps=3, warmup_steps=1, **SMALL)
    refiner = train_refiner(model, config, progress=False, log=rows.append)
    assert not refiner.training
    assert float(refiner.head.weight.detach().abs().sum()) > 0  # it left the identity
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert {"loss", "box", "box_base", "click", "click_base"} <= set(row)
        assert all(0.0 <= row[k] <= 1.0 for k in ("box", "box_base", "click", "click_base"))
    assert not any(p.requires_grad for p in model.parameters())  # the model stays frozen


def test_a_few_steps_on_one_scene_lower_the_loss() -> None:
    torch.manual_seed(0)
    model = build_sam(TINY)
    config = RefinerTrainConfig(steps=1, lr=1e-2, warmup_steps=1, **SMALL)
    refiner = MaskRefiner(RefinerConfig(width=16))
    losses: list[float] = []
    for _ in range(6):  # the same step's scenes each time (seed and step fix them)
        rows: list[dict[str, float]] = []
        refiner = train_refiner(model, config, refiner, progress=False, log=rows.append)
        losses.append(rows[0]["loss"])
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps must be at least 1"),
        ({"boxes_per_image": 0, "sessions_per_image": 0}, "nothing to train"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"seed": 300}, "seed must be within"),
    ],
)
def test_config_refuses_bad_values(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InputError, match=message):
        RefinerTrainConfig(**kwargs)  # type: ignore[arg-type]


def test_the_stride_must_match_the_model_grid() -> None:
    refiner = MaskRefiner(RefinerConfig(stride=8))
    with pytest.raises(InputError, match="stride is 8"):
        train_refiner(build_sam(TINY), RefinerTrainConfig(steps=1), refiner, progress=False)


@pytest.fixture
def tiny_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """``segany.load_model`` gives a seeded TINY model (not a registered one)."""

    def load_tiny(name=None, checkpoint=None, **kwargs):
        torch.manual_seed(0)
        return build_sam(TINY)

    monkeypatch.setattr(segany, "load_model", load_tiny)


def _refuses_to_overwrite(argv: list[str], path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Run ``argv`` again without --overwrite: exit 2, one line, ``path`` untouched."""
    before = path.read_bytes()
    capsys.readouterr()
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "exists; pass --overwrite" in err and len(err.splitlines()) == 1
    assert path.read_bytes() == before


@pytest.mark.usefixtures("tiny_model")
def test_cli_trains_saves_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The summary names the weights file the refiner was fitted to, with its sha256."""
    out, weights = tmp_path / "run", tmp_path / "mine.safetensors"
    weights.write_bytes(b"the frozen weights")  # (the fixture's load_model builds TINY)
    argv = ["train", "refiner", "-o", str(out), "--steps", "1", "--images-per-step", "1"]
    assert main([*argv, "--checkpoint", str(weights), "--eval-scenes", "1", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["with_refiner"]) == {"box", "centre", "clicks_3"}
    assert summary["checkpoint"] == str(weights)
    assert summary["checkpoint_sha256"] == hashlib.sha256(b"the frozen weights").hexdigest()
    assert refine.load_refiner(path=out / "refiner.safetensors").config == RefinerConfig()
    assert len((out / "log.jsonl").read_text().splitlines()) == 1
    _refuses_to_overwrite(argv, out / "refiner.safetensors", capsys)


REMOVED = "was removed in segany 0.2.0: the mask stages are opt-in now; pass --stages auto"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "refiner", "-o", "x", "--steps", "0"], "--steps: must be at least 1"),
        (["eval", "--refiner", "/no/such.safetensors"], f"--refiner {REMOVED}"),
        (["eval", "--refiner", "none", "proposals"], f"--refiner {REMOVED}"),
        (["eval", "--stages", "/no/such.json"], "--stages: /no/such.json is not 'none', 'auto'"),
        (["eval", "--stages", "auto", "proposals"], "--stages is an option of the promptable"),
        (["train", "ranker", "-o", "x", "--seed", "1"], "must not see the evaluation's scenes"),
        (["eval", "--ranker", "/no/such.safetensors"], f"--ranker {REMOVED}"),
        (["eval", "--ranker", "none", "proposals"], f"--ranker {REMOVED}"),
        (["train", "ranker", "-o", "x", "--prompts", "lines"], "--prompts: invalid choice"),
        (["train", "ranker", "-o", "x", "--refiner", "/no/such"], "--refiner: /no/such is not"),
        (["eval", "--zoom", "0.5,2"], f"--zoom {REMOVED}"),
        (["eval", "--zoom", "big"], f"--zoom {REMOVED}"),
        (["eval", "--graph-cut", "none"], f"--graph-cut {REMOVED}"),
        (["eval", "--box-ranker"], f"--box-ranker {REMOVED}"),
    ],
)
def test_cli_refuses_bad_arguments(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.slow
@pytest.mark.usefixtures("tiny_model")
def test_ranker_cli_trains_saves_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ranker is trained and scored on the answers of the ``--refiner`` given (a
    refiner file, as for weights of your own, which have none registered)."""
    refiner_file = tmp_path / "refiner.safetensors"
    torch.manual_seed(1)
    save_state_dict_file(MaskRefiner(RefinerConfig(width=8)).export(), refiner_file)
    refiners: list[object] = []
    real_staged = refine.StagedPredictor

    def recording(predictor: segany.Predictor, stages: refine.Stages) -> refine.StagedPredictor:
        staged = real_staged(predictor, stages)
        refiners.append(staged.stages.refiner)
        return staged

    monkeypatch.setattr(refine, "StagedPredictor", recording)
    out = tmp_path / "run"
    argv = ["train", "ranker", "-o", str(out), "--scenes", "1", "--epochs", "2"]
    argv += ["--refiner", str(refiner_file)]
    assert main([*argv, "--eval-scenes", "1", "--quiet"]) == 0
    assert len(refiners) == 3  # the collector, then the held-out scoring with and without
    for refiner in refiners:
        assert isinstance(refiner, MaskRefiner) and refiner.config.width == 8
    summary = json.loads((out / "summary.json").read_text())
    assert summary["refiner"] == str(refiner_file)
    assert "checkpoint" not in summary  # a registered model's weights: its name says it
    assert set(summary["with_ranker"]) == {"centre", "random", "clicks_3"}
    assert summary["scenes"] == 1 and summary["seed"] == 7
    ranker = refine.load_ranker(path=out / "ranker.safetensors")
    assert ranker.config.hidden == 64 and ranker.config.kind == "clicks"
    assert [json.loads(line)["epoch"] for line in (out / "log.jsonl").open()] == [1, 2]
    _refuses_to_overwrite(argv, out / "ranker.safetensors", capsys)


@pytest.mark.slow
@pytest.mark.usefixtures("tiny_model")
@pytest.mark.parametrize("kind", ["boxes", "box_cut"])
def test_ranker_cli_trains_a_box_ranker(tmp_path: Path, kind: str) -> None:
    """``--prompts boxes`` (or ``box_cut``): the box ranker's file, scored on the box
    prompts with (3 masks, ranked) and without it (the single mask); the click ranker's
    file is left alone."""
    out = tmp_path / "run"
    argv = ["train", "ranker", "-o", str(out), "--scenes", "1", "--epochs", "2"]
    assert main([*argv, "--prompts", kind, "--eval-scenes", "1", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prompts"] == kind and summary["box_ranker"].endswith("box_ranker.safetensors")
    assert set(summary["with_box_ranker"]) == set(summary["without_box_ranker"]) == {
        "box", "noisy_box",
    }  # fmt: skip
    box_ranker = refine.load_box_ranker(path=out / "box_ranker.safetensors")
    assert box_ranker.config.hidden == 64 and box_ranker.config.kind == kind
    assert not (out / "ranker.safetensors").exists()
