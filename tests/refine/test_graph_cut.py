"""Graph-cut snapping: masks move to the image's colour edges, within the prompt's region."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import segany
from segany.errors import InputError
from segany.models import build_sam
from segany.refine import StagedPredictor, Stages, get_stage_spec, registered_stages
from segany.refine.graph_cut import GraphCut
from tests.helpers import TINY


def _disk_scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A noisy red disk (radius 30 at 80, 60) on a noisy blue background, and its mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:120, :160]
    disk = (xx - 80) ** 2 + (yy - 60) ** 2 <= 30**2
    image = np.where(disk[..., None], [200, 40, 40], [40, 60, 190]).astype(np.float64)
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), disk


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_a_blob_in_the_box_snaps_to_the_object() -> None:
    image, disk = _disk_scene()
    rough = np.zeros_like(disk)
    rough[40:80, 60:100] = True  # a square inside the disk's box: IoU about 0.57
    box = np.array([50.0, 30.0, 110.0, 90.0])
    snapped = GraphCut()(image, rough, box=box)
    assert _iou(rough, disk) < 0.6
    assert _iou(snapped, disk) > 0.95
    assert not snapped[:, :35].any(), "nothing outside the grown box"


def test_clicks_alone_let_the_mask_grow_and_are_obeyed() -> None:
    image, disk = _disk_scene(1)
    shrunk = np.zeros_like(disk)
    shrunk[50:70, 70:90] = True  # a small part of the disk
    clicks, labels = np.array([[80.0, 60.0]]), np.array([1])
    snapped = GraphCut(mask_margin=1.0)(image, shrunk, clicks, labels)
    assert _iou(snapped, disk) > 0.9 > _iou(shrunk, disk)
    # A negative click is background for certain, a positive one object for certain.
    negative = np.array([[80.0, 60.0], [60.0, 60.0]])
    snapped = GraphCut(mask_margin=1.0)(image, shrunk, negative, np.array([1, 0]))
    assert snapped[60, 80] and not snapped[60, 60]


def test_large_regions_are_cut_at_a_lower_resolution_and_keep_their_edge() -> None:
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:400, :400]
    disk = (xx - 200) ** 2 + (yy - 200) ** 2 <= 150**2
    image = np.where(disk[..., None], [30, 180, 60], [170, 150, 40]).astype(np.float64)
    image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
    rough = np.zeros_like(disk)
    rough[100:300, 100:300] = True
    box = np.array([50.0, 50.0, 350.0, 350.0])
    coarse = GraphCut(max_side=64)(image, rough, box=box)
    full = GraphCut(max_side=None)(image, rough, box=box)
    assert _iou(full, disk) > 0.97 and _iou(coarse, disk) > 0.97 > _iou(rough, disk)
    assert coarse.shape == disk.shape and coarse.dtype == bool
    # A click keeps its certainty at the lower resolution.
    clicked = GraphCut(max_side=64)(image, rough, np.array([[30.0, 30.0]]), np.array([0]), box)
    assert not clicked[30, 30] and clicked[200, 200]
    with pytest.raises(ValueError, match="max_side"):
        GraphCut(max_side=8)


def test_nothing_to_seed_leaves_the_mask_alone() -> None:
    image, disk = _disk_scene()
    empty = np.zeros_like(disk)
    assert not GraphCut()(image, empty).any()  # no box, no mask, no click
    flat = np.full_like(image, 128)
    rough = np.zeros_like(disk)
    rough[40:80, 60:100] = True
    out = GraphCut()(flat, rough, box=np.array([50.0, 30.0, 110.0, 90.0]))
    assert out.shape == rough.shape and out.dtype == bool
    outside = GraphCut(box_grow=2)(image, rough, box=np.array([1000.0, 30.0, 1100.0, 90.0]))
    np.testing.assert_array_equal(outside, rough)  # no region: the mask as given, not grown
    with pytest.raises(ValueError, match="iterations"):
        GraphCut(iterations=0)
    with pytest.raises(ValueError, match=">= 0"):
        GraphCut(box_margin=-0.1)


def test_predictor_snaps_masks_only_for_weights_that_ask() -> None:
    spec = get_stage_spec("segany_shapes")
    assert spec is not None and spec.graph_cut
    torch.manual_seed(0)  # (a random mask wholly outside the box would be left alone)
    random = build_sam(TINY)
    with pytest.raises(InputError, match="no mask stages are registered"):
        registered_stages(random)  # random weights: not asked for
    with pytest.raises(ValueError, match="graph_cut must be"):
        Stages(graph_cut="yes")  # type: ignore[arg-type]
    image, disk = _disk_scene()
    plain = segany.Predictor(random)
    snapping = StagedPredictor(segany.Predictor(random), Stages(graph_cut=GraphCut()))
    box = np.array([50.0, 30.0, 110.0, 90.0])
    outs = []
    for predictor in (plain, snapping):
        predictor.set_image(image)
        outs.append(predictor.predict(box=box[None], multimask=True))
    np.testing.assert_array_equal(outs[0].low_res_logits, outs[1].low_res_logits)
    np.testing.assert_array_equal(outs[0].scores, outs[1].scores)
    assert outs[1].masks.shape == outs[0].masks.shape == (1, 3, 120, 160)
    assert not outs[1].masks[..., :35].any(), "snapped masks stay in the box's region"
    logits = snapping.predict(box=box, return_logits=True)
    assert logits.masks.dtype != bool  # logits are the model's, never snapped


def test_the_cut_does_not_depend_on_opencv_random_state() -> None:
    """GrabCut starts its colour models with k-means++ on OpenCV's global RNG: the same
    input must give the same mask whatever drew from that RNG before."""
    import cv2

    image, disk = _disk_scene(3)
    rough = np.zeros_like(disk)
    rough[20:100, 30:130] = True  # a loose seed, so the mixture's start matters
    cut = GraphCut(iterations=1)
    first = cut(image, rough, np.array([[80.0, 60.0]]), np.array([1]))
    cv2.randu(np.zeros(1000), 0, 1)  # advance OpenCV's RNG
    np.testing.assert_array_equal(cut(image, rough, np.array([[80.0, 60.0]]), np.array([1])), first)


def test_a_box_seed_is_grown_before_the_cut_and_a_click_seed_is_not(monkeypatch) -> None:
    import cv2

    seeds: list[np.ndarray] = []
    real = cv2.grabCut

    def spy(image, mask, *args):  # type: ignore[no-untyped-def]
        seeds.append(np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).copy())
        return real(image, mask, *args)

    monkeypatch.setattr(cv2, "grabCut", spy)
    image, disk = _disk_scene(3)
    rough = np.zeros_like(disk)
    rough[45:75, 65:95] = True
    box = np.array([50.0, 30.0, 110.0, 90.0])
    assert GraphCut().box_grow == 1
    GraphCut(box_grow=0, max_side=None, context=0)(image, rough, box=box)
    GraphCut(box_grow=2, max_side=None, context=0)(image, rough, box=box)
    assert seeds[0].sum() == 30 * 30 and seeds[1].sum() == 34 * 34  # 2 px on every side
    clicks, labels = np.array([[80.0, 60.0]]), np.array([1])
    GraphCut(box_grow=2, max_side=None)(image, rough, clicks, labels)
    assert seeds[2].sum() == 30 * 30  # a click's seed is the mask as it is
    with pytest.raises(ValueError, match="box_grow"):
        GraphCut(box_grow=-1)


def test_cuts_on_threads_equal_the_cuts_one_by_one() -> None:
    """``snap_all`` runs a batch's cuts side by side and gives each mask's own cut."""
    image, disk = _disk_scene(5)
    masks = np.zeros((2, 3) + disk.shape, dtype=bool)
    masks[0, 0, 40:80, 60:100] = True
    masks[0, 1, 20:100, 30:130] = True
    masks[0, 2, 50:70, 70:90] = True
    masks[1] = masks[0, ::-1]
    boxes = np.array([[50.0, 30.0, 110.0, 90.0], [45.0, 25.0, 115.0, 95.0]])
    cut = GraphCut()
    want = np.stack(
        [[cut(image, m, box=box) for m in ms] for ms, box in zip(masks, boxes, strict=True)]
    )
    for threads in (1, 2, 4):
        got = cut.snap_all(image, masks.copy(), boxes=boxes, threads=threads)
        np.testing.assert_array_equal(got, want)
    assert _iou(want[0, 0], disk) > 0.9  # (real cuts, not the seeds back)
