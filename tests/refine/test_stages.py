"""Stages (segany.refine): their checks, stage files, the registry by weights, the removed
0.1 options, and a StagedPredictor without stages answering as the network does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import segany
from segany import refine
from segany.errors import InputError
from segany.loading import bundled_path
from segany.models import build_sam
from segany.refine import (
    ClickZoom,
    GraphCut,
    MaskRanker,
    MaskRefiner,
    RankerConfig,
    StagedPredictor,
    Stages,
    get_stage_spec,
    read_stages_file,
    registered_stages,
)
from segany.weights import save_state_dict_file, sha256_file
from tests.helpers import TINY


def test_stages_refuse_a_ranker_of_the_wrong_kind() -> None:
    clicks, boxes = MaskRanker(RankerConfig(8)), MaskRanker(RankerConfig(8, kind="boxes"))
    box_cut, masks = (MaskRanker(RankerConfig(8, kind=k)) for k in ("box_cut", "masks"))
    for ranker in (boxes, box_cut):
        with pytest.raises(ValueError, match="pass it as box_ranker"):
            Stages(ranker=ranker)
    for ranker in (clicks, masks):
        with pytest.raises(ValueError, match="not a box ranker: pass it as ranker"):
            Stages(box_ranker=ranker)
    stages = Stages(ranker=clicks, box_ranker=box_cut)
    assert stages.ranker is clicks and stages.box_ranker is box_cut
    assert Stages(ranker=masks, box_ranker=boxes).names == ()  # rankers need the graph cut
    for name in refine.STAGE_NAMES:  # (no "auto" any more: registered_stages gives those)
        with pytest.raises(ValueError, match=f"{name} must be a .* or None, got 'auto'"):
            Stages(**{name: "auto"})  # type: ignore[arg-type]


def test_without_drops_the_named_stages_and_keeps_the_rest() -> None:
    refiner, cut, zoom = MaskRefiner(), GraphCut(), ClickZoom()
    ranker = MaskRanker(RankerConfig(8))
    stages = Stages(refiner=refiner, graph_cut=cut, ranker=ranker, zoom=zoom)
    assert stages.names == ("refiner", "graph_cut", "ranker", "zoom")
    assert stages.describe() == "refiner + graph cut + ranker + zoom"
    fewer = stages.without("zoom", "ranker")
    assert fewer == Stages(refiner=refiner, graph_cut=cut)
    assert fewer.refiner is refiner and fewer.graph_cut is cut
    assert stages.zoom is zoom and stages.ranker is ranker  # (frozen: a new Stages)
    assert stages.without() == stages
    assert stages.without(*refine.STAGE_NAMES) == Stages()
    assert Stages().names == () and Stages().describe() == "none"
    assert stages.without("graph_cut").names == ("refiner", "zoom")  # no cut: no ranking
    with pytest.raises(ValueError, match="unknown stages"):
        stages.without("polisher")


@pytest.fixture
def stage_files(tmp_path: Path) -> Path:
    """The bundled model's stage files copied into ``tmp_path``."""
    spec = get_stage_spec("segany_shapes")
    assert spec is not None
    for info in (spec.refiner, spec.ranker, spec.box_ranker):
        assert info is not None
        shutil.copy(bundled_path(info.filename), tmp_path / info.filename)
    return tmp_path


def _write(path: Path, entries: object) -> Path:
    path.write_text(json.dumps(entries))
    return path


def test_a_stages_file_names_its_stages_beside_it(stage_files: Path) -> None:
    entries = {
        "refiner": "segany_shapes_refiner.safetensors",
        "graph_cut": True,
        "ranker": "segany_shapes_ranker.safetensors",
        "box_ranker": "segany_shapes_box_ranker.safetensors",
        "zoom": [0.5, 0.2],
    }
    stages = read_stages_file(_write(stage_files / "stages.json", entries))
    assert stages.names == refine.STAGE_NAMES
    bundled = registered_stages("segany_shapes")
    assert stages.zoom == bundled.zoom == ClickZoom(windows=(0.5, 0.2))
    assert stages.graph_cut == bundled.graph_cut
    assert stages.box_ranker is not None and stages.box_ranker.config.kind == "box_cut"
    for name in ("refiner", "ranker", "box_ranker"):
        ours, theirs = getattr(stages, name).state_dict(), getattr(bundled, name).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    only = read_stages_file(_write(stage_files / "cut.json", {"graph_cut": True}))
    assert only == Stages(graph_cut=GraphCut())
    assert read_stages_file(_write(stage_files / "empty.json", {})) == Stages()


def test_a_bad_stages_file_is_an_input_error(stage_files: Path) -> None:
    missing = _write(stage_files / "missing.json", {"refiner": "nowhere.safetensors"})
    with pytest.raises(InputError, match="refiner 'nowhere.safetensors' is not a file beside"):
        read_stages_file(missing)
    bad = stage_files / "bad.json"
    bad.write_text('{"graph_cut": tru')
    with pytest.raises(InputError, match="is not a readable stages file"):
        read_stages_file(bad)
    with pytest.raises(InputError, match="is not a readable stages file"):
        read_stages_file(stage_files / "absent.json")
    unknown = _write(stage_files / "unknown.json", {"graph_cut": True, "polisher": "p.pt"})
    with pytest.raises(InputError, match="a JSON object with keys"):
        read_stages_file(unknown)
    with pytest.raises(InputError, match="a JSON object with keys"):
        read_stages_file(_write(stage_files / "list.json", ["graph_cut"]))
    # a click ranker's file named as the box ranker: its kind is refused
    swapped = {"box_ranker": "segany_shapes_ranker.safetensors"}
    with pytest.raises(segany.errors.CheckpointError, match="it is a 'clicks' ranker"):
        read_stages_file(_write(stage_files / "swapped.json", swapped))


def test_the_bundled_weights_have_their_stages_and_verified_files() -> None:
    """Only a model that load_model filled with the registered bundled weights (or its
    registered name) gets the bundled stages; their files ship with the package."""
    spec = get_stage_spec("segany_shapes")
    assert spec is not None and spec.graph_cut and spec.zoom
    for info in (spec.refiner, spec.ranker, spec.box_ranker):
        assert info is not None
        path = bundled_path(info.filename)
        assert sha256_file(path) == info.sha256 and path.stat().st_size == info.size
    model = segany.load_model("segany_shapes")
    weights = segany.get_spec("segany_shapes").weights
    assert weights is not None and model.weights_sha256 == spec.weights_sha256 == weights.sha256
    stages = registered_stages(model)
    assert stages.names == refine.STAGE_NAMES
    assert stages.zoom == ClickZoom(windows=spec.zoom)
    assert stages.box_ranker is not None and stages.box_ranker.config.kind == "box_cut"
    assert stages.ranker is not None and stages.ranker.config.kind == "clicks"
    assert registered_stages("segany_shapes").names == refine.STAGE_NAMES


def test_other_weights_have_no_stages(tmp_path: Path) -> None:
    torch.manual_seed(0)
    random = segany.load_model("segany_shapes", pretrained=False)
    for model in (build_sam(TINY), random):
        assert get_stage_spec(model) is None
        with pytest.raises(InputError, match="no mask stages are registered"):
            registered_stages(model)
    # the bundled weights given as a checkpoint file: weights of the user's own
    checkpoint = tmp_path / "mine.safetensors"
    save_state_dict_file(random.state_dict(), checkpoint)
    mine = segany.load_model("segany_shapes", checkpoint=checkpoint)
    assert mine.weights_sha256 is None
    with pytest.raises(InputError, match="no mask stages are registered"):
        registered_stages(mine)
    with pytest.raises(InputError, match="no mask stages are registered"):
        registered_stages("mobile_sam")


def test_predictor_refuses_the_removed_stage_options() -> None:
    model = build_sam(TINY)
    for option in ("refiner", "graph_cut", "ranker", "box_ranker", "zoom"):
        with pytest.raises(TypeError, match=r"segany\.refine\.StagedPredictor"):
            segany.Predictor(model, **{option: None})
    with pytest.raises(TypeError, match="unexpected keyword arguments: polisher"):
        segany.Predictor(model, polisher=None)  # type: ignore[call-arg]


def test_the_moved_loaders_name_their_new_place() -> None:
    for name in ("load_refiner", "load_ranker", "load_box_ranker"):
        with pytest.raises(TypeError, match=rf"segany\.refine\.{name}\b"):
            getattr(segany, name)()
    with pytest.raises(TypeError, match=r"segany\.refine\.load_refiner"):
        segany.load_refiner(path="refiner.safetensors")


def test_no_stages_answer_exactly_as_the_network() -> None:
    torch.manual_seed(0)
    model = build_sam(TINY)
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    plain = segany.Predictor(model)
    staged = StagedPredictor(segany.Predictor(model), Stages())
    for predictor in (plain, staged):
        predictor.set_image(image)
    assert staged.original_size == plain.original_size == (48, 64)
    boxes = np.array([[4, 4, 40, 30], [0, 0, 20, 20], [10, 5, 60, 45]])
    prompts: list[dict[str, object]] = [
        {"points": [[10, 12]], "labels": [1]},
        {"points": [[10, 12]], "labels": [1], "multimask": False},
        {"box": boxes},
        {"box": boxes, "multimask": False},
        {"points": [[10, 12]], "labels": [1], "return_logits": True},
    ]
    for prompt in prompts:
        a, b = plain.predict(**prompt), staged.predict(**prompt)  # type: ignore[arg-type]
        assert a.masks.dtype == b.masks.dtype and a.masks.shape == b.masks.shape
        np.testing.assert_array_equal(b.masks, a.masks)
        np.testing.assert_array_equal(b.scores, a.scores)
        np.testing.assert_array_equal(b.low_res_logits, a.low_res_logits)
    assert staged.predict(box=boxes).masks.shape == (3, 3, 48, 64)
