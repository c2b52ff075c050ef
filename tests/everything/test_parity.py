"""segany.MaskGenerator returns the official SamAutomaticMaskGenerator's masks.

Both generators run on models loaded from ONE checkpoint: random weights edited so the
decoder makes blob masks around the prompt (see ``structured.py``), so there are many
distinct masks and every stage (IoU and stability filters, crop-edge filter, NMS within
and between crops, small-region removal) has work to do. Parity: the same number of
masks, each matched one-to-one with IoU >= 0.99, predicted IoU and stability score within
1e-3, the same crop box. The measured numbers are printed (``pytest -s``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pycocotools import mask as coco_mask

import segany
from tests.everything.structured import blob_models, scene
from tests.reference.official import SMALL_VIT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


MIN_IOU = 0.99
SCORE_TOL = 1e-3


def _mask(record: dict[str, Any], size: tuple[int, int]) -> np.ndarray:
    segmentation = record["segmentation"]
    if isinstance(segmentation, np.ndarray):
        return segmentation.astype(bool)
    if isinstance(segmentation["counts"], str):
        return coco_mask.decode(segmentation).astype(bool)
    return segany.data.rle.rle_to_mask(segmentation)


def _compare(
    official: list[dict[str, Any]], ours: list[dict[str, Any]], size: tuple[int, int], label: str
) -> dict[str, float]:
    """Match the records one to one (same crop box, best mask IoU) and check parity."""
    assert len(ours) == len(official), f"{label}: {len(ours)} masks, official {len(official)}"
    theirs = [_mask(r, size) for r in official]
    mine = [_mask(r, size) for r in ours]
    free = set(range(len(ours)))
    ious, d_iou, d_stab, same_order, equal_fields = [], [], [], 0, 0
    for i, record in enumerate(official):
        candidates = [j for j in free if ours[j]["crop_box"] == record["crop_box"]]
        assert candidates, (
            f"{label}: no mask left for official mask {i} (crop {record['crop_box']})"
        )
        overlaps = [
            (theirs[i] & mine[j]).sum() / max((theirs[i] | mine[j]).sum(), 1) for j in candidates
        ]
        best = candidates[int(np.argmax(overlaps))]
        free.remove(best)
        ious.append(float(max(overlaps)))
        d_iou.append(abs(ours[best]["predicted_iou"] - record["predicted_iou"]))
        d_stab.append(abs(ours[best]["stability_score"] - record["stability_score"]))
        same_order += best == i
        equal_fields += all(
            ours[best][key] == record[key] for key in ("area", "bbox", "point_coords", "crop_box")
        )
        assert type(ours[best]["segmentation"]) is type(record["segmentation"])
    stats = {
        "masks": len(official),
        "min_iou": min(ious, default=1.0),
        "max_d_iou": max(d_iou, default=0.0),
        "max_d_stability": max(d_stab, default=0.0),
        "same_order": same_order,
        "equal_area_bbox_point": equal_fields,
    }
    print(f"\n{label}: {stats}")
    assert stats["min_iou"] >= MIN_IOU, stats
    assert stats["max_d_iou"] <= SCORE_TOL, stats
    assert stats["max_d_stability"] <= SCORE_TOL, stats
    return stats


def _run(official_model: torch.nn.Module, ours_model: segany.models.Sam, image, **options):
    module = "mobile_sam" if "TinyViT" in type(official_model.image_encoder).__name__ else None
    if module:
        from mobile_sam import SamAutomaticMaskGenerator  # type: ignore[import-untyped]
    else:
        from segment_anything import SamAutomaticMaskGenerator  # type: ignore[import-untyped]
    official = SamAutomaticMaskGenerator(official_model, **options).generate(image)
    ours = segany.MaskGenerator(ours_model, **options).generate(image)
    return official, ours


def test_a_small_vit_default_options(tmp_path: Path) -> None:
    """(a) A small random ViT, the official default options (but 16 points per side)."""
    official_model, ours_model = blob_models(SMALL_VIT, tmp_path / "small_vit.pth")
    image = scene(200, 300, seed=3)
    official, ours = _run(official_model, ours_model, image, points_per_side=16)
    stats = _compare(official, ours, image.shape[:2], "(a) small ViT, defaults")
    assert stats["masks"] >= 20
    # coco_rle output: the same compressed strings as pycocotools'
    official, ours = _run(
        official_model, ours_model, image, points_per_side=16, output_mode="coco_rle"
    )
    _compare(official, ours, image.shape[:2], "(a) small ViT, coco_rle")
    strings = {r["segmentation"]["counts"] for r in official}
    assert sum(r["segmentation"]["counts"] in strings for r in ours) >= 0.9 * len(ours)


def test_a_bundled_model_default_options() -> None:
    """(a) The bundled trained model on generated scenes: the official default options,
    and thresholds lowered so that many of its masks are compared."""
    from segment_anything import SamAutomaticMaskGenerator  # type: ignore[import-untyped]

    from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
    from segany.reference import official_sam

    ours_model = segany.load_model("segany_shapes")
    official_model = official_sam(ours_model.config)
    official_model.load_state_dict(ours_model.state_dict())
    official_model.eval()
    lowered = {"pred_iou_thresh": 0.1, "stability_score_thresh": 0.35}
    compared = 0
    for index, options in ((2, {}), (5, {}), (5, lowered)):
        image = SceneDataset(index + 1, EVAL_BASE_SEED)[index].image
        with torch.inference_mode():
            official = SamAutomaticMaskGenerator(official_model, **options).generate(image)
        ours = segany.MaskGenerator(ours_model, **options).generate(image)
        label = f"(a) bundled model, scene {index}, {options or 'defaults'}"
        compared += _compare(official, ours, image.shape[:2], label)["masks"]
    assert compared >= 10, "the trained model's masks are compared"


def test_b_mobile_sam_hundreds_of_masks(tmp_path: Path) -> None:
    """(b) Random MobileSAM, lowered thresholds: hundreds of masks survive."""
    config = segany.get_spec("mobile_sam").config
    official_model, ours_model = blob_models(
        config,
        tmp_path / "mobile_sam.pth",
        areas=(0.004, 0.012, 0.035),
        frequency=1.5,
        sharpness=0.5,
    )
    image = scene(200, 300, seed=5)
    options: dict[str, Any] = {
        "points_per_side": 10,
        "points_per_batch": 8,
        "pred_iou_thresh": 0.5,
        "stability_score_thresh": 0.5,
        "output_mode": "uncompressed_rle",
    }
    official, ours = _run(official_model, ours_model, image, **options)
    stats = _compare(official, ours, image.shape[:2], "(b) MobileSAM, lowered thresholds")
    assert stats["masks"] >= 150


def test_c_crops_and_small_regions(tmp_path: Path) -> None:
    """(c) crop_n_layers=1 and min_mask_region_area=100 on a non-square image."""
    official_model, ours_model = blob_models(SMALL_VIT, tmp_path / "small_vit.pth")
    image = scene(230, 170, seed=8)
    options: dict[str, Any] = {
        "points_per_side": 12,
        "crop_n_layers": 1,
        "crop_n_points_downscale_factor": 2,
        "pred_iou_thresh": 0.8,
        "stability_score_thresh": 0.8,
        "min_mask_region_area": 100,
    }
    official, ours = _run(official_model, ours_model, image, **options)
    stats = _compare(official, ours, image.shape[:2], "(c) crops + small regions")
    assert stats["masks"] >= 20
    assert len({tuple(r["crop_box"]) for r in ours}) > 1  # masks from several crops
    # the small-region step had work to do: without it, other masks come out
    plain = segany.MaskGenerator(ours_model, **{**options, "min_mask_region_area": 0})
    before = {(r["area"], tuple(r["point_coords"][0])) for r in plain.generate(image)}
    after = {(r["area"], tuple(r["point_coords"][0])) for r in ours}
    print(f"small regions: {len(after - before)} of {len(after)} masks changed or newly kept")
    assert after != before
