"""Mask arithmetic against the official helpers and torchvision's batched NMS."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything.utils import amg  # type: ignore[import-untyped]
from torchvision.ops import batched_nms

from segany.everything.masks import (
    box_xyxy_to_xywh,
    counts_area,
    counts_to_mask,
    is_box_near_crop_edge,
    masks_to_boxes,
    masks_to_rle_counts,
    nms,
    stability_score,
    uncrop_boxes,
)


def _random_masks(count: int, height: int, width: int, seed: int) -> torch.Tensor:
    """Mixed masks: noise of several densities, blocks, empty, full and single pixels."""
    gen = torch.Generator().manual_seed(seed)
    density = torch.rand(count, 1, 1, generator=gen)
    masks = torch.rand(count, height, width, generator=gen) < density * 0.3
    for i in range(0, count, 5):
        y0, x0 = (int(v) for v in torch.randint(0, min(height, width), (2,), generator=gen))
        masks[i] = False
        masks[i, y0 : y0 + height // 3, x0 : x0 + width // 4] = True
    masks[1] = False
    masks[2] = True
    masks[3] = False
    masks[3, height - 1, width - 1] = True
    masks[4] = False
    masks[4, 0, 0] = True
    return masks


def test_stability_score_equals_official() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 37, 53, generator=gen) * 3
    logits[0] = -5.0  # empty at both cuts: NaN in both implementations
    logits[1, :, :] = 0.5  # empty at the upper cut
    for offset in (1.0, 0.5, 0.0):
        ours = stability_score(logits, 0.0, offset)
        official = amg.calculate_stability_score(logits, 0.0, offset)
        assert ours.dtype == official.dtype == torch.float32
        assert torch.equal(ours.isnan(), official.isnan())
        assert torch.equal(ours.nan_to_num(), official.nan_to_num())


@pytest.mark.parametrize(("height", "width"), [(1, 1), (7, 3), (48, 64), (101, 33)])
def test_masks_to_boxes_equals_official(height: int, width: int) -> None:
    masks = _random_masks(25, height, width, seed=height * width)
    ours = masks_to_boxes(masks)
    assert ours.dtype == torch.int64
    assert torch.equal(ours, amg.batched_mask_to_box(masks))
    assert masks_to_boxes(masks[:0]).shape == (0, 4)


def test_box_near_crop_edge_equals_official() -> None:
    gen = torch.Generator().manual_seed(1)
    image_box = [0, 0, 300, 200]
    for crop in ([0, 0, 300, 200], [0, 0, 180, 120], [120, 80, 300, 200], [60, 0, 240, 200]):
        width, height = crop[2] - crop[0], crop[3] - crop[1]
        x = torch.randint(0, width, (200, 2), generator=gen).sort(dim=1).values
        y = torch.randint(0, height, (200, 2), generator=gen).sort(dim=1).values
        boxes = torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)
        ours = is_box_near_crop_edge(boxes, crop, image_box)
        assert torch.equal(ours, amg.is_box_near_crop_edge(boxes, crop, image_box))


def test_uncrop_and_xywh() -> None:
    boxes = torch.tensor([[1, 2, 3, 4]])
    assert torch.equal(
        uncrop_boxes(boxes, [10, 20, 50, 60]), amg.uncrop_boxes_xyxy(boxes, [10, 20, 50, 60])
    )
    assert (
        box_xyxy_to_xywh([5, 6, 9, 20])
        == amg.box_xyxy_to_xywh(torch.tensor([5, 6, 9, 20])).tolist()
    )


def _random_boxes(count: int, seed: int, span: int) -> torch.Tensor:
    """Integer boxes (many exact duplicates and zero-area boxes, as masks produce)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, span, (count, 2), generator=gen).sort(dim=1).values
    y = torch.randint(0, span, (count, 2), generator=gen).sort(dim=1).values
    boxes = torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)
    duplicates = torch.arange(1, max(count, 1), 7)
    boxes[duplicates - 1] = boxes[duplicates]  # exact copies: IoU 1, or NaN at zero area
    return boxes


@pytest.mark.parametrize("count", [0, 1, 5, 300, 999, 1000, 1001, 2500])
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.7, 0.95, 1.0])
def test_nms_equals_torchvision_batched_nms(count: int, threshold: float) -> None:
    """Same kept indices in the same order, with tied scores and tied boxes."""
    boxes = _random_boxes(count, seed=count, span=40 if count < 100 else 300)
    gen = torch.Generator().manual_seed(count + 1)
    tied = torch.randint(0, 4, (count,), generator=gen).float()  # heavy ties (0/1 scores)
    smooth = torch.rand(count, generator=gen)
    crop_area = 1 / torch.randint(1, 4, (count,), generator=gen) ** 2  # 1/area of crops
    for scores in (tied, smooth, crop_area.float()):
        ours = nms(boxes, scores, threshold)
        official = batched_nms(boxes.float(), scores, torch.zeros(count), threshold)
        assert torch.equal(ours, official), (count, threshold)


@pytest.mark.parametrize(
    ("crop", "size"),
    [
        ([0, 0, 64, 48], (48, 64)),  # the whole image
        ([10, 0, 50, 48], (48, 64)),  # full height: runs continue across columns
        ([0, 5, 64, 30], (48, 64)),  # full width
        ([7, 9, 40, 41], (48, 64)),  # inside
        ([63, 47, 64, 48], (48, 64)),  # one pixel
    ],
)
def test_rle_counts_equal_official(crop: list[int], size: tuple[int, int]) -> None:
    height, width = crop[3] - crop[1], crop[2] - crop[0]
    masks = _random_masks(25, height, width, seed=sum(crop))
    ours = masks_to_rle_counts(masks, crop, size)
    official = amg.mask_to_rle_pytorch(amg.uncrop_masks(masks, crop, size[0], size[1]))
    assert len(ours) == len(official)
    for counts, rle in zip(ours, official, strict=True):
        assert counts.tolist() == rle["counts"]
        assert counts_area(counts) == amg.area_from_rle(rle)
        assert np.array_equal(counts_to_mask(counts, size), amg.rle_to_mask(rle))
    assert masks_to_rle_counts(masks[:0], crop, size) == []
