"""MaskGenerator's own behaviour: options, output modes, bounded memory, batching."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import segany
from segany.errors import InputError
from segany.everything import MaskGenerator
from tests.everything.structured import blob_models, scene
from tests.reference.official import SMALL_VIT


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> segany.models.Sam:
    _, ours = blob_models(SMALL_VIT, tmp_path_factory.mktemp("gen") / "small_vit.pth")
    return ours


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return scene(120, 160, seed=3)


OPTIONS: dict[str, Any] = {
    "points_per_side": 8,
    "pred_iou_thresh": 0.5,
    "stability_score_thresh": 0.5,
}


def test_public_api() -> None:
    assert segany.MaskGenerator is MaskGenerator
    assert "MaskGenerator" in segany.__all__


@pytest.mark.parametrize(
    "options",
    [
        {"points_per_side": None},  # neither grid nor points
        {"point_grids": [np.zeros((4, 2))]},  # both
        {"points_per_side": 0},
        {"points_per_side": 2.5},
        {"points_per_batch": 0},
        {"crop_n_layers": -1},
        {"crop_n_points_downscale_factor": 0},
        {"crop_overlap_ratio": 1.0},
        {"min_mask_region_area": -5},
        {"output_mode": "png"},
        {"pred_iou_thresh": float("nan")},
        {"points_per_side": 4, "crop_n_layers": 3, "crop_n_points_downscale_factor": 2},
        {"chunk_pixels": 0},
    ],
)
def test_bad_options_raise_input_error(model: segany.models.Sam, options: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        MaskGenerator(model, **options)


@pytest.mark.parametrize(
    "grids",
    [[np.zeros((4, 3))], [np.full((4, 2), 1.5)], [np.zeros((0, 2))], [np.zeros((4, 2))] * 1],
)
def test_bad_point_grids_raise_input_error(model: segany.models.Sam, grids: list) -> None:
    with pytest.raises(InputError):
        MaskGenerator(model, points_per_side=None, point_grids=grids, crop_n_layers=1)


def test_not_a_model_raises_input_error() -> None:
    with pytest.raises(InputError):
        MaskGenerator("mobile_sam")  # type: ignore[arg-type]


def test_output_modes_agree(model: segany.models.Sam, image: np.ndarray) -> None:
    binary = MaskGenerator(model, **OPTIONS).generate(image)
    plain = MaskGenerator(model, **OPTIONS, output_mode="uncompressed_rle").generate(image)
    coco = MaskGenerator(model, **OPTIONS, output_mode="coco_rle").generate(image)
    assert len(binary) == len(plain) == len(coco) > 5
    for b, p, c in zip(binary, plain, coco, strict=True):
        mask = b["segmentation"]
        assert mask.dtype == bool and mask.shape == image.shape[:2]
        assert np.array_equal(segany.data.rle.rle_to_mask(p["segmentation"]), mask)
        assert np.array_equal(segany.data.rle.rle_to_mask(c["segmentation"]), mask)
        assert isinstance(c["segmentation"]["counts"], str)
        assert b["area"] == int(mask.sum())
        x, y, w, h = b["bbox"]
        ys, xs = np.nonzero(mask)
        assert [x, y, x + w, y + h] == [xs.min(), ys.min(), xs.max(), ys.max()]
        assert b["crop_box"] == [0, 0, image.shape[1], image.shape[0]]
        assert set(b) == {
            "segmentation",
            "area",
            "bbox",
            "predicted_iou",
            "point_coords",
            "stability_score",
            "crop_box",
        }
        for key in ("predicted_iou", "point_coords", "stability_score", "crop_box", "bbox"):
            assert b[key] == p[key] == c[key]


def test_upsampling_is_chunked_and_chunks_do_not_change_results(
    model: segany.models.Sam, image: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No call upsamples more masks than a chunk allows; results equal the unchunked ones."""
    whole = MaskGenerator(model, **OPTIONS, chunk_pixels=1 << 40).generate(image)
    sizes: list[int] = []
    original = model.postprocess_masks

    def spy(masks: torch.Tensor, *args: Any) -> torch.Tensor:
        sizes.append(masks.shape[0] * masks.shape[1])
        return original(masks, *args)

    monkeypatch.setattr(model, "postprocess_masks", spy)
    per_mask = model.image_size**2 + image.shape[0] * image.shape[1]
    chunked = MaskGenerator(model, **OPTIONS, chunk_pixels=7 * per_mask).generate(image)
    assert sizes and max(sizes) == 6  # 7 masks' worth, rounded down to a multiple of 3
    assert len(chunked) == len(whole)
    for a, b in zip(chunked, whole, strict=True):
        assert np.array_equal(a["segmentation"], b["segmentation"])
        assert a["stability_score"] == b["stability_score"]


def test_predicted_iou_filter_runs_before_upsampling(
    model: segany.models.Sam, image: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    upsampled = []
    original = model.postprocess_masks

    def spy(masks: torch.Tensor, *args: Any) -> torch.Tensor:
        upsampled.append(masks.shape[0] * masks.shape[1])
        return original(masks, *args)

    monkeypatch.setattr(model, "postprocess_masks", spy)
    MaskGenerator(model, points_per_side=8, pred_iou_thresh=2.0).generate(image)  # none pass
    assert upsampled == []


def test_decoder_batch_size_does_not_change_masks(
    model: segany.models.Sam, image: np.ndarray
) -> None:
    one = MaskGenerator(model, **OPTIONS, decoder_batch_size=1).generate(image)
    many = MaskGenerator(model, **OPTIONS, decoder_batch_size=64).generate(image)
    assert len(one) == len(many)
    for a, b in zip(one, many, strict=True):
        assert (a["segmentation"] != b["segmentation"]).sum() <= 2
        assert abs(a["predicted_iou"] - b["predicted_iou"]) < 1e-5


def test_explicit_point_grid_equals_points_per_side(
    model: segany.models.Sam, image: np.ndarray
) -> None:
    grid = segany.everything.grid.build_point_grid(8)
    options = {k: v for k, v in OPTIONS.items() if k != "points_per_side"}
    explicit = MaskGenerator(model, points_per_side=None, point_grids=[grid], **options)
    by_side = MaskGenerator(model, **OPTIONS)
    a, b = explicit.generate(image), by_side.generate(image)
    assert [r["area"] for r in a] == [r["area"] for r in b]


def test_shares_a_predictor_and_its_embedding_cache(
    model: segany.models.Sam, image: np.ndarray
) -> None:
    predictor = segany.Predictor(model)
    calls: list[int] = []
    hook = model.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        generator = MaskGenerator(predictor, points_per_side=4)
        first = generator.generate(image)
        second = generator.generate(image)
    finally:
        hook.remove()
    assert len(calls) == 1
    assert [r["area"] for r in first] == [r["area"] for r in second]


def test_nothing_passes_gives_an_empty_list(model: segany.models.Sam, image: np.ndarray) -> None:
    generator = MaskGenerator(model, points_per_side=4, stability_score_thresh=1.5)
    assert generator.generate(image) == []
    generator.min_mask_region_area = 50
    assert generator.generate(image) == []


def test_tiny_image_with_crop_layers(model: segany.models.Sam) -> None:
    """Tiny images get empty crops from the official layout; they are skipped."""
    tiny = np.full((3, 2, 3), 100, dtype=np.uint8)
    records = MaskGenerator(
        model, points_per_side=2, crop_n_layers=2, pred_iou_thresh=0, stability_score_thresh=0
    ).generate(tiny)
    assert all(r["segmentation"].shape == (3, 2) for r in records)


def test_accepts_paths_and_pil(model: segany.models.Sam, image: np.ndarray, tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "scene.png"
    Image.fromarray(image).save(path)
    generator = MaskGenerator(model, points_per_side=4, **{"pred_iou_thresh": 0.5})
    from_array = generator.generate(image)
    assert [r["area"] for r in generator.generate(path)] == [r["area"] for r in from_array]
    assert [r["area"] for r in generator.generate(Image.open(path))] == [
        r["area"] for r in from_array
    ]
    with pytest.raises(InputError):
        generator.generate(np.zeros((4, 4), dtype=np.float64))
