"""Work on generated scenes in worker processes (``segany eval --jobs N``, ``segany train
ranker --jobs N``): the same results as one process, in scene order."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
import torch

import segany
from segany.cli.main import main
from segany.data.scenes import EVAL_BASE_SEED, Scene, SceneConfig, SceneDataset
from segany.eval import evaluate_promptable
from segany.eval.promptable import promptable_rows, scene_rng
from segany.eval.workers import map_scenes
from segany.models import build_sam
from segany.refine.graph_cut import GraphCut
from segany.refine.train_ranker import collect_ranking_examples
from tests.helpers import TINY

SMALL = SceneConfig(size=(64, 80), min_objects=2, max_objects=3)
SCENES = SceneDataset(3, EVAL_BASE_SEED, SMALL)


def tiny_predictor() -> segany.Predictor:
    """A seeded TINY model's predictor (module level: the workers import and call it)."""
    torch.manual_seed(0)
    return segany.Predictor(build_sam(TINY), cache_size=0)


def _one_thread(run: Any) -> Any:
    """``run()`` on one torch thread, as each of two workers on a 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run()
    finally:
        torch.set_num_threads(threads)


def _scene_seed(predictor: object, index: int, scene: Scene) -> tuple[int, int]:
    return index, scene.seed


def test_map_scenes_keeps_scene_order_in_and_out_of_process() -> None:
    expected = [(i, SCENES[i].seed) for i in range(3)]
    assert map_scenes(tiny_predictor, _scene_seed, SCENES, 1, progress=False) == expected
    assert map_scenes(tiny_predictor, _scene_seed, SCENES, 2, progress=False) == expected


def test_workers_give_the_serial_evaluation() -> None:
    options = {"clicks": 1, "seed": 4}
    work = functools.partial(promptable_rows, **options)
    per_scene = map_scenes(tiny_predictor, work, SCENES, 2, progress=False)
    serial = _one_thread(lambda: evaluate_promptable(tiny_predictor(), SCENES, **options))
    assert [row for rows in per_scene for row in rows] == serial
    assert len(serial) == sum(len(SCENES[i].masks) for i in range(3))


def test_a_scenes_random_prompts_do_not_depend_on_the_scenes_before_it() -> None:
    alone = _one_thread(lambda: evaluate_promptable(tiny_predictor(), [SCENES[2]], clicks=0))
    after = _one_thread(lambda: evaluate_promptable(tiny_predictor(), SCENES, clicks=0))
    assert after[-len(alone) :] == alone
    draw = [scene_rng(seed, SCENES[i]).random() for seed in (1, 2) for i in (0, 2)]
    assert len(set(draw)) == 4  # each seed and scene its own stream
    assert scene_rng(1, SCENES[2]).random() == draw[1]


def test_workers_collect_the_serial_ranking_examples() -> None:
    scenes = SceneDataset(2, 7, SMALL)
    build = tiny_predictor
    x2, y2 = collect_ranking_examples(
        build(), GraphCut(), scenes, clicks=1, progress=False, jobs=2, build=build
    )
    x1, y1 = _one_thread(
        lambda: collect_ranking_examples(build(), GraphCut(), scenes, clicks=1, progress=False)
    )
    assert x1.shape == x2.shape and x1.shape[1] == 30 and len(x1) > 0
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    with pytest.raises(ValueError, match="jobs > 1 needs build"):
        collect_ranking_examples(build(), GraphCut(), scenes, jobs=2)


def test_a_failing_scene_raises_its_error() -> None:
    work = functools.partial(promptable_rows, click_masks=2)
    with pytest.raises(ValueError, match="click_masks must be 1 or 3"):
        map_scenes(tiny_predictor, work, SCENES, 2, progress=False)
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        map_scenes(tiny_predictor, work, SCENES, 0)


@pytest.mark.parametrize("command", [["eval"], ["train", "ranker", "-o", "x"]])
def test_cli_refuses_no_jobs(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    assert main([*command, "--jobs", "0", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--jobs" in err and len(err.splitlines()) == 1
