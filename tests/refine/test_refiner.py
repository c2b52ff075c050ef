"""The colour-model mask refiner: identity at start, prompt planes, saving, the staged
predictor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import segany
from segany import refine
from segany.errors import CheckpointError, InputError
from segany.models import build_sam
from segany.refine import StagedPredictor, Stages
from segany.refine.refiner import MaskRefiner, RefinerConfig, box_region, click_maps
from segany.weights import save_state_dict_file
from tests.helpers import TINY


def _trained_like(seed: int = 0) -> MaskRefiner:
    """A refiner whose head is not zero (so it changes the masks)."""
    torch.manual_seed(seed)
    refiner = MaskRefiner(RefinerConfig(width=8, dilations=(1, 2), iterations=2))
    torch.nn.init.normal_(refiner.head.weight, std=0.5)
    return refiner.eval()


def _inputs(batch: int = 2, count: int = 3, side: int = 16):
    torch.manual_seed(1)
    pixels = torch.randn(1, 48, side, side)
    logits = torch.randn(batch, count, side, side) * 5
    return pixels, logits


def test_a_new_refiner_returns_the_logits_unchanged() -> None:
    pixels, logits = _inputs()
    refiner = MaskRefiner().eval()
    points = torch.tensor([[[10.0, 20.0]], [[30.0, 4.0]]])
    labels = torch.ones(2, 1, dtype=torch.long)
    boxes = torch.tensor([[0.0, 0.0, 30.0, 30.0], [8.0, 8.0, 60.0, 40.0]])
    for kwargs in ({}, {"point_coords": points, "point_labels": labels}, {"boxes": boxes}):
        out = refiner(pixels, logits, **kwargs)
        assert out.shape == logits.shape
        torch.testing.assert_close(out, logits)


def test_iterations_are_returned_for_training() -> None:
    pixels, logits = _inputs(count=1)
    outputs = _trained_like()(pixels, logits, all_iterations=True)
    assert len(outputs) == 2 and all(o.shape == logits.shape for o in outputs)
    assert not torch.equal(outputs[0], outputs[1])  # the second step re-estimates colours


def test_box_region_marks_the_cells_inside() -> None:
    region = box_region(torch.tensor([[8.0, 4.0, 23.0, 11.0]]), side=8, stride=4)
    assert region.shape == (1, 1, 8, 8)
    rows, cols = np.nonzero(region[0, 0].numpy())
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (1, 2, 2, 5)


def test_click_maps_peak_at_the_clicks_by_label() -> None:
    points = torch.tensor([[[6.0, 6.0], [26.0, 14.0], [0.0, 0.0]]])
    labels = torch.tensor([[1, 0, -1]])  # the padding point is ignored
    maps = click_maps(points, labels, side=8, stride=4)
    assert maps.shape == (1, 2, 8, 8)
    assert divmod(int(maps[0, 0].argmax()), 8) == (1, 1)
    assert divmod(int(maps[0, 1].argmax()), 8) == (3, 6)
    assert float(maps[0, 0, 0, 7]) < 1e-3 and float(maps[0, 0].max()) > 0.5


def test_export_round_trip(tmp_path: Path) -> None:
    refiner = _trained_like()
    path = save_state_dict_file(refiner.export(), tmp_path / "refiner.safetensors")
    loaded = refine.load_refiner(path=path)
    assert loaded.config == refiner.config
    pixels, logits = _inputs()
    torch.testing.assert_close(loaded(pixels, logits), refiner(pixels, logits))


def test_loading_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no registered mask refiner"):
        refine.load_refiner("mobile_sam")
    other = save_state_dict_file({"w": torch.zeros(2)}, tmp_path / "x.safetensors")
    with pytest.raises(CheckpointError, match="not a mask refiner"):
        refine.load_refiner(path=other)
    state = _trained_like().export()
    state["stem.weight"] = torch.zeros(3)
    bad = save_state_dict_file(state, tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="not a mask refiner"):
        refine.load_refiner(path=bad)


def test_predictor_applies_a_refiner_to_every_prompt_kind() -> None:
    model = build_sam(TINY)
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    plain = segany.Predictor(model)
    refined = StagedPredictor(segany.Predictor(model), Stages(refiner=_trained_like()))
    for predictor in (plain, refined):
        predictor.set_image(image)
    prompts = [
        {"points": [[10, 12]], "labels": [1]},
        {"box": [4, 4, 40, 30]},
        {"box": np.array([[4, 4, 40, 30], [0, 0, 20, 20]])},
        {"points": [[10, 12], [30, 30]], "labels": [1, 0], "box": [4, 4, 40, 30]},
    ]
    for prompt in prompts:
        a, b = (
            plain.predict(**prompt, return_logits=True),
            refined.predict(**prompt, return_logits=True),
        )
        assert a.masks.shape == b.masks.shape
        np.testing.assert_array_equal(a.scores, b.scores)  # the IoU head is not refined
        assert not np.allclose(a.low_res_logits, b.low_res_logits)
    # the refined logits go back in as the mask input
    first = refined.predict(points=[[10, 12]], labels=[1], multimask=False)
    again = refined.predict(points=[[10, 12]], labels=[1], mask_input=first.low_res_logits)
    assert again.masks.shape == (3, 48, 64)


def test_only_the_registered_weights_get_the_registered_refiner() -> None:
    random = segany.load_model("segany_shapes", pretrained=False)
    with pytest.raises(InputError, match="no mask stages are registered"):
        refine.registered_stages(random)  # not the weights the refiner knows
    assert refine.registered_stages(segany.load_model("segany_shapes")).refiner is not None
    with pytest.raises(ValueError, match="refiner must be"):
        Stages(refiner="yes")  # type: ignore[arg-type]


def test_a_fast_model_runs_a_bf16_copy_of_the_refiner() -> None:
    refiner = _trained_like()
    fast_model = segany.engine.apply_mode(build_sam(TINY), "fast")
    fast = StagedPredictor(segany.Predictor(fast_model), Stages(refiner=refiner))
    assert fast.stages.refiner is not None
    assert fast.stages.refiner.stem.weight.dtype == torch.bfloat16
    assert refiner.stem.weight.dtype == torch.float32  # the caller's refiner is untouched
    fast.set_image(np.zeros((32, 32, 3), dtype=np.uint8))
    assert fast.predict(box=[2, 2, 20, 20]).low_res_logits.dtype == np.float32
