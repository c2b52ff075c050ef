"""Promptable training: the loss falls, checkpoints round-trip and resume exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import segany.errors as segany_errors
import segany.train.loop as loop
from segany.cli.main import main
from segany.errors import InputError
from segany.models import build_sam
from segany.train import TrainConfig, train
from tests.helpers import TINY

FAST = TrainConfig(
    steps=24, images_per_step=2, prompts_per_image=6, clicks=1, warmup_steps=4, lr=2e-3,
    checkpoint_every=8, log_every=4, bf16=False, focal_from_step=0, focal_ramp_steps=0,
    easy_steps=0, clicks_from_step=6,
)  # fmt: skip


def _fresh() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_sam(TINY)


def _log(out: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (out / loop.LOG).read_text().splitlines()]


def test_loss_falls_and_outputs_written(tmp_path: Path) -> None:
    train(FAST, tmp_path, progress=False, model=_fresh())
    log = _log(tmp_path)
    assert [row["step"] for row in log] == [4, 8, 12, 16, 20, 24]
    assert log[-1]["loss"] < 0.7 * log[0]["loss"]
    for name in ("checkpoint.pt", "model.safetensors", "config.json"):
        assert (tmp_path / name).is_file()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 24 and TrainConfig.from_dict(state["config"]) == FAST


def test_resume_equals_uninterrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    straight = _fresh()
    train(FAST, tmp_path / "a", progress=False, model=straight)

    calls = {"n": 0}
    real_step = loop.train_step

    def dies_at_step_13(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 13:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", dies_at_step_13)
    with pytest.raises(KeyboardInterrupt):
        train(FAST, tmp_path / "b", progress=False, model=_fresh())
    monkeypatch.setattr(loop, "train_step", real_step)
    saved = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert saved["step"] == 8  # the last checkpoint before the interruption
    resumed = _fresh()
    train(FAST, tmp_path / "b", resume=True, progress=False, model=resumed)
    logged = [row["step"] for row in _log(tmp_path / "b")]
    assert logged == sorted(set(logged)) == [4, 8, 12, 16, 20, 24], "no step logged twice"
    for key, value in straight.state_dict().items():
        assert torch.allclose(value, resumed.state_dict()[key], atol=1e-6), key


def test_never_overwrites_without_flag(tmp_path: Path) -> None:
    config = TrainConfig(**{**FAST.to_dict(), "steps": 2, "checkpoint_every": 1})
    train(config, tmp_path, progress=False, model=_fresh())
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(InputError, match="--resume.*--overwrite"):
        train(config, tmp_path, progress=False, model=_fresh())
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    with pytest.raises(InputError, match="nothing to resume"):
        train(config, tmp_path / "empty", resume=True, progress=False, model=_fresh())
    train(config, tmp_path, overwrite=True, progress=False, model=_fresh())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "0"], "--steps: must be at least 1"),
        (["--steps", "x"], "whole number"),
        (["--model", "nope"], "unknown model 'nope'"),
        (["--resume", "--overwrite"], "not allowed with"),
        (["--lr", "-1"], "--lr: must be a positive number"),
        (["--lr", "nan"], "--lr: must be a positive number"),
        (["--seed", "-3"], "--seed: must be at least 0"),
        (["--resume", "--lr", "0.1"], "only --steps may change (--lr)"),
    ],
)
def test_cli_refuses_bad_arguments(tmp_path, capsys, argv, message) -> None:
    assert main(["train", "-o", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_refuses_existing_run(tmp_path, capsys) -> None:
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    assert main(["train", "-o", str(tmp_path), "--steps", "1", "--quiet"]) == 2
    assert "already holds a training run" in capsys.readouterr().err
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"x"


def test_schedules_warm_up_hold_and_decay() -> None:
    config = TrainConfig(steps=1000, warmup_steps=100, decay_fraction=0.25, min_lr_ratio=0.1)
    factors = [loop.lr_factor(step, config) for step in range(1000)]
    assert factors[0] == pytest.approx(0.01) and factors[99] == pytest.approx(1.0)
    assert all(f == 1.0 for f in factors[100:750]), "stable until the last quarter"
    assert factors[750] == pytest.approx(1.0) and factors[999] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b for a, b in zip(factors[750:], factors[751:], strict=False))
    areas = [config.min_object_area(s) for s in (0, 399, 400, 600, 800, 5000)]
    assert areas[0] == areas[1] == config.warmup_min_area and areas[-2:] == [1, 1]
    assert areas[1] > areas[3] > areas[4], "the size curriculum relaxes geometrically"
    shares = [config.focal_share(s) for s in (0, 799, 800, 1200, 1600, 9000)]
    assert shares == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]


def test_focal_share_blends_bce_into_focal() -> None:
    from segany.train.losses import segmentation_loss

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn((3, 3, 16, 16), generator=generator)
    iou = torch.rand((3, 3), generator=generator)
    targets = (torch.rand((3, 16, 16), generator=generator) > 0.7).float()
    bce, _ = segmentation_loss(logits, iou, targets, focal_share=0.0)
    focal, _ = segmentation_loss(logits, iou, targets, focal_share=1.0)
    half, _ = segmentation_loss(logits, iou, targets, focal_share=0.5)
    assert not torch.isclose(bce, focal)
    # per prompt the best of 3 may change with the blend, so only bounds hold exactly
    assert min(bce, focal) - 1e-6 <= half <= 0.5 * (bce + focal) + 1e-6


def test_resume_can_lengthen_a_run(tmp_path: Path) -> None:
    short = TrainConfig(**{**FAST.to_dict(), "steps": 8})
    train(short, tmp_path, progress=False, model=_fresh())
    with pytest.raises(InputError, match="not beyond"):
        train(short, tmp_path, resume=True, steps=8, progress=False, model=_fresh())
    train(short, tmp_path, resume=True, steps=12, progress=False, model=_fresh())
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 12 and state["config"]["steps"] == 12
    assert _log(tmp_path)[-1]["step"] == 12


def test_export_weights_round_trips(tmp_path: Path) -> None:
    from segany.train import export_weights
    from segany.weights import load_state_dict_file

    config = TrainConfig(**{**FAST.to_dict(), "steps": 2, "checkpoint_every": 1})
    model = _fresh()
    train(config, tmp_path, progress=False, model=model)
    out = export_weights(tmp_path / "checkpoint.pt", tmp_path / "weights.safetensors")
    exported = load_state_dict_file(out)
    assert set(exported) == set(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(exported[key], value), key
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="cannot read training checkpoint"):
        export_weights(tmp_path / "junk.pt", tmp_path / "x.safetensors")


def test_training_scenes_never_come_from_the_evaluation_range() -> None:
    from segany.data.scenes import EVAL_BASE_SEED, TRAIN_BASE_SEED, scene_seed

    model = _fresh()
    for seed in (0, 1, 255):
        config = TrainConfig(**{**FAST.to_dict(), "seed": seed})
        seen = []
        original = loop.generate_scene

        def spy(scene, cfg, seen=seen, original=original):
            seen.append(scene)
            return original(scene, cfg)

        loop.generate_scene = spy
        try:
            loop.step_scenes(3, config, model)
        finally:
            loop.generate_scene = original
        low, high = scene_seed(TRAIN_BASE_SEED, 0), scene_seed(EVAL_BASE_SEED, 0)
        assert all(low <= s < high for s in seen), "inside the training range"
    with pytest.raises(InputError, match="seed"):
        TrainConfig(seed=256)


def test_grouping_loss_trains_a_probe_and_resumes(tmp_path: Path) -> None:
    from segany.train.grouping import grouping_loss

    features = torch.zeros((1, 2, 4, 4))
    regions = torch.zeros((1, 4, 4), dtype=torch.long)
    regions[0, :, 2:] = 1
    together = grouping_loss(features, regions)
    features[0, 0, :, 2:] = 5.0  # the two regions pulled apart
    apart = grouping_loss(features, regions)
    assert apart < together
    config = TrainConfig(**{**FAST.to_dict(), "steps": 4, "checkpoint_every": 2,
                            "grouping_weight": 1.0})  # fmt: skip
    train(config, tmp_path, progress=False, model=_fresh())
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["probe"] is not None and "proj.weight" in state["probe"]
    assert "grouping" in _log(tmp_path)[-1]
    train(config, tmp_path, resume=True, steps=6, progress=False, model=_fresh())


def test_prompt_head_trains_with_the_model_and_resumes(tmp_path: Path) -> None:
    config = TrainConfig(**{**FAST.to_dict(), "steps": 4, "checkpoint_every": 2,
                            "prompt_head_weight": 0.5})  # fmt: skip
    train(config, tmp_path, progress=False, model=_fresh())
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["prompt_head"] is not None and "slot_edges" in state["prompt_head"]
    assert "head_loss" in _log(tmp_path)[-1]
    assert (tmp_path / loop.HEAD).is_file()
    train(config, tmp_path, resume=True, steps=6, progress=False, model=_fresh())
    head_file = tmp_path / "head.safetensors"
    loop.export_weights(tmp_path / "checkpoint.pt", tmp_path / "model2.safetensors", head_file)
    from segany.prompt_heads import load_prompt_head

    head = load_prompt_head(path=head_file)
    assert head.config.in_chans == TINY.prompt_embed_dim
    with pytest.raises(segany_errors.CheckpointError, match="no prompt head"):
        train(FAST, tmp_path / "plain", progress=False, model=_fresh())
        loop.export_weights(tmp_path / "plain" / "checkpoint.pt", tmp_path / "m.st", head_file)


@pytest.mark.parametrize("trainable", ["decoder", "iou_head"])
def test_frozen_parts_do_not_move(tmp_path: Path, trainable: str) -> None:
    config = TrainConfig(**{**FAST.to_dict(), "steps": 4, "trainable": trainable})
    model = _fresh()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train(config, tmp_path, progress=False, model=model)
    moved = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    learning = (
        ("mask_decoder.iou_prediction_head.",)
        if trainable == "iou_head"
        else ("mask_decoder.", "prompt_encoder.")
    )
    assert moved, "something learnt"
    assert all(k.startswith(learning) for k in moved), sorted(moved)
    if trainable == "decoder":
        assert any(k.startswith("mask_decoder.transformer.") for k in moved)


def test_unknown_trainable_part_is_refused() -> None:
    with pytest.raises(InputError, match="trainable must be one of all, decoder, iou_head"):
        TrainConfig(trainable="neck")


def test_rank_term_prefers_scores_that_order_the_masks() -> None:
    from segany.train.losses import segmentation_loss

    targets = torch.zeros(1, 8, 8)
    targets[0, :4] = 1
    logits = torch.full((1, 3, 8, 8), -5.0)
    logits[0, 1, :4] = 5.0  # mask 1 is right, masks 0 and 2 are empty
    right = torch.tensor([[0.1, 0.9, 0.1]])
    wrong = torch.tensor([[0.9, 0.1, 0.1]])
    plain = [segmentation_loss(logits, iou, targets)[0] for iou in (right, wrong)]
    ranked = [segmentation_loss(logits, iou, targets, rank_weight=1.0)[0] for iou in (right, wrong)]
    assert ranked[0] - plain[0] < 0.01, "little rank loss when the best mask scores highest"
    assert ranked[1] - plain[1] > 5.0, "a large one when another mask does"
