"""The promptable evaluation in worker processes (``segany eval --jobs N``)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import segany
from segany.cli.main import main
from segany.data.scenes import EVAL_BASE_SEED, SceneConfig, SceneDataset
from segany.eval import evaluate_promptable
from segany.eval.parallel import evaluate_in_processes
from segany.eval.promptable import scene_rng
from segany.models import build_sam
from tests.test_loading import TINY

SCENES = SceneDataset(3, EVAL_BASE_SEED, SceneConfig(size=(64, 80), min_objects=2, max_objects=3))


def tiny_predictor() -> segany.Predictor:
    """A seeded TINY model's predictor (module level: the workers import and call it)."""
    torch.manual_seed(0)
    return segany.Predictor(build_sam(TINY), cache_size=0)


def _serial(scenes: list[int], **options: Any) -> list[dict[str, float]]:
    """Rows of the serial evaluation of these scenes, on one thread as each worker."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return evaluate_promptable(tiny_predictor(), [SCENES[i] for i in scenes], **options)
    finally:
        torch.set_num_threads(threads)


def test_workers_give_the_serial_rows_in_scene_order() -> None:
    rows = evaluate_in_processes(tiny_predictor, SCENES, 2, progress=False, clicks=1, seed=4)
    assert rows == _serial([0, 1, 2], clicks=1, seed=4)
    assert len(rows) == sum(len(SCENES[i].masks) for i in range(3))


def test_a_scenes_random_prompts_do_not_depend_on_the_scenes_before_it() -> None:
    alone = _serial([2], clicks=0, seed=1)
    after_others = _serial([0, 1, 2], clicks=0, seed=1)
    assert after_others[-len(alone) :] == alone
    draw = [scene_rng(seed, SCENES[i]).random() for seed in (1, 2) for i in (0, 2)]
    assert len(set(draw)) == 4  # each seed and scene its own stream
    assert scene_rng(1, SCENES[2]).random() == draw[1]


def test_a_failing_scene_raises_its_error() -> None:
    with pytest.raises(ValueError, match="click_masks must be 1 or 3"):
        evaluate_in_processes(tiny_predictor, SCENES, 2, progress=False, click_masks=2)
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        evaluate_in_processes(tiny_predictor, SCENES, 0)


def test_cli_refuses_no_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--jobs", "0", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--jobs" in err and len(err.splitlines()) == 1
