"""Class-agnostic mask proposal recall (AR), as SAM and MobileSAMv2 report for SegEvery.

Every ground-truth instance of every image counts as one category ("object"); the
proposals of an image are its predicted masks with scores. The numbers are those of
pycocotools' ``COCOeval(iouType="segm")`` with ``params.useCats = 0`` (the tests compare
them on hand-made and random cases), with NumPy only (IoU from run-length encodings, see
:mod:`segany.eval.mask_iou`):

* IoU thresholds ``0.50:0.05:0.95`` (``np.linspace(0.5, 0.95, 10)``, so the ninth is
  ``0.8999999999999999``); a threshold ``t`` is used as ``min(t, 1 - 1e-10)``.
* Each image's proposals are ranked by score (ties keep their input order) and cut to the
  top ``max(max_dets)``; recall at a smaller ``m`` counts the matches of the top ``m``
  (greedy matching of a prefix does not depend on what follows it).
* Greedy matching per image and threshold: proposals in rank order; each takes the
  unmatched ground truth of highest IoU ``>= t`` (ties: the later ground truth),
  preferring ground truths inside the area range to ignored ones; each ground truth is
  matched at most once. There are no crowd annotations.
* Area ranges ``all`` ``[0, 1e10]``, ``small`` ``[0, 32**2]``, ``medium`` ``[32**2,
  96**2]``, ``large`` ``[96**2, 1e10]``, *inclusive at both ends* as in COCO (an instance
  of exactly 1024 pixels is small and medium), tested on the ground truth's area (its pixel
  count unless ``gt_areas`` are given). Ground truths outside the range are ignored: they
  can absorb a proposal but count neither as found nor as missed.
* Recall at threshold ``t`` = matched non-ignored ground truths / all non-ignored ground
  truths, pooled over all images; AR = the mean over the thresholds. An area range without
  ground truth has recall NaN (COCOeval reports -1).

``lvis=True`` follows LVIS's evaluation for a single exhaustively annotated category: the
same thresholds, area ranges and matching (LVIS copies COCO's), but 300 proposals per
image unless ``max_dets`` is given (SAM's LVIS numbers use ``max_dets=(1000,)``). LVIS's
federated rules (negative and not-exhaustive category lists) only affect precision and do
not apply to one category, so the recall is computed the same way.

Keys of :meth:`RecallResult.summary`: ``AR@{m}`` (all sizes) and ``AR_{small,medium,
large}@{m}`` for every ``m`` in ``max_dets``, ``num_gt`` and ``num_gt_{size}`` (ground
truths in each range) and ``num_images``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from segany.errors import InputError

from .mask_iou import MaskLike, MaskSet, encode_masks, mask_list, runs_iou

__all__ = [
    "AREA_RANGES",
    "COCO_MAX_DETS",
    "IOU_THRESHOLDS",
    "LVIS_MAX_DETS",
    "Proposals",
    "RecallAccumulator",
    "RecallResult",
    "evaluate_proposals",
    "proposal_recall",
    "proposals_from_records",
]

#: COCO's IoU thresholds, built exactly as pycocotools builds them.
IOU_THRESHOLDS: tuple[float, ...] = tuple(float(t) for t in np.linspace(0.5, 0.95, 10))
#: COCO's area ranges ``(name, low, high)`` in pixels, inclusive at both ends.
AREA_RANGES: tuple[tuple[str, float, float], ...] = (
    ("all", 0.0, 1e5**2),
    ("small", 0.0, 32.0**2),
    ("medium", 32.0**2, 96.0**2),
    ("large", 96.0**2, 1e5**2),
)
COCO_MAX_DETS: tuple[int, ...] = (10, 100, 1000)
LVIS_MAX_DETS: tuple[int, ...] = (300,)

_NEVER = np.iinfo(np.int64).max  # rank of the proposal matching a ground truth never found


class Proposals(NamedTuple):
    """Scored masks of one image, as :func:`proposals_from_records` makes them.

    The evaluators also take a plain ``(masks, scores)`` tuple, with the masks as a
    ``KxHxW`` array or any sequence of ``HxW`` arrays / COCO RLEs.

    Attributes:
        masks: ``K`` masks (``HxW`` arrays or COCO RLEs).
        scores: ``K`` float64 scores; higher ranks first.
    """

    masks: list[MaskLike]
    scores: npt.NDArray[np.float64]


@dataclass(frozen=True)
class RecallResult:
    """Recall of all images by IoU threshold, area range and proposal budget.

    Attributes:
        recall: ``TxAxM`` float64, NaN where an area range has no ground truth (COCOeval's
            ``eval["recall"][:, 0]``, which holds -1 there).
        iou_thresholds: ``T`` thresholds.
        area_ranges: ``A`` ``(name, low, high)`` ranges.
        max_dets: ``M`` proposal budgets per image, increasing.
        num_gt: ``A`` ground-truth counts, one per area range.
        num_images: Images evaluated.
    """

    recall: npt.NDArray[np.float64]
    iou_thresholds: tuple[float, ...]
    area_ranges: tuple[tuple[str, float, float], ...]
    max_dets: tuple[int, ...]
    num_gt: tuple[int, ...]
    num_images: int

    def average_recall(self) -> npt.NDArray[np.float64]:
        """``AxM`` AR: the recall averaged over the IoU thresholds (NaN without ground truth)."""
        return np.asarray(np.mean(self.recall, axis=0), dtype=np.float64)

    def summary(self) -> dict[str, float]:
        """Flat metrics: ``AR@{m}``, ``AR_{area}@{m}``, ``num_gt[_{area}]``, ``num_images``."""
        average = self.average_recall()
        out: dict[str, float] = {}
        for a, (name, _, _) in enumerate(self.area_ranges):
            prefix = "AR" if name == "all" else f"AR_{name}"
            for m, budget in enumerate(self.max_dets):
                out[f"{prefix}@{budget}"] = float(average[a, m])
        for a, (name, _, _) in enumerate(self.area_ranges):
            out["num_gt" if name == "all" else f"num_gt_{name}"] = float(self.num_gt[a])
        out["num_images"] = float(self.num_images)
        return out


def evaluate_proposals(
    gt_masks: Sequence[MaskSet],
    proposals: Sequence[Proposals | tuple[MaskSet, npt.ArrayLike]],
    *,
    max_dets: Sequence[int] | None = None,
    lvis: bool = False,
    gt_areas: Sequence[npt.ArrayLike] | None = None,
) -> dict[str, float]:
    """Class-agnostic AR of ``proposals`` against ``gt_masks`` (see the module docstring).

    Returns:
        :meth:`RecallResult.summary` of :func:`proposal_recall`, e.g. ``{"AR@10": ...,
        "AR@100": ..., "AR@1000": ..., "AR_small@10": ..., ..., "num_gt": ...,
        "num_images": ...}``.
    """
    return proposal_recall(
        gt_masks, proposals, max_dets=max_dets, lvis=lvis, gt_areas=gt_areas
    ).summary()


def proposal_recall(
    gt_masks: Sequence[MaskSet],
    proposals: Sequence[Proposals | tuple[MaskSet, npt.ArrayLike]],
    *,
    max_dets: Sequence[int] | None = None,
    lvis: bool = False,
    gt_areas: Sequence[npt.ArrayLike] | None = None,
    iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
    area_ranges: Sequence[tuple[str, float, float]] = AREA_RANGES,
) -> RecallResult:
    """Recall table of scored mask proposals, COCOeval's ``segm`` numbers with ``useCats=0``.

    Args:
        gt_masks: Per image, its ``G`` ground-truth masks (``GxHxW`` array or sequence of
            ``HxW`` arrays / COCO RLEs; may be empty).
        proposals: Per image, ``(masks, scores)`` of its ``K`` proposals (same mask forms),
            all of the ground truth's size.
        max_dets, lvis, iou_thresholds, area_ranges: As for :class:`RecallAccumulator`.
        gt_areas: Per image, ``G`` areas used for the area ranges instead of pixel counts
            (COCO's ``area`` field, e.g. polygon areas).

    Raises:
        InputError: Inconsistent lengths or sizes, a bad mask or RLE, NaN scores, or a
            budget below 1.
    """
    if len(gt_masks) != len(proposals) or (gt_areas is not None and len(gt_areas) != len(gt_masks)):
        raise InputError(
            f"need one entry per image: {len(gt_masks)} ground-truth sets, "
            f"{len(proposals)} proposal sets"
            + ("" if gt_areas is None else f", {len(gt_areas)} area sets")
        )
    accumulator = RecallAccumulator(
        max_dets=max_dets, lvis=lvis, iou_thresholds=iou_thresholds, area_ranges=area_ranges
    )
    for i, (gt, found) in enumerate(zip(gt_masks, proposals, strict=True)):
        accumulator.add(gt, found, None if gt_areas is None else gt_areas[i])
    return accumulator.result()


class RecallAccumulator:
    """Adds images one at a time (nothing but counts is kept) and returns the recall table.

    Args:
        max_dets: Proposal budgets per image; default ``(10, 100, 1000)``, or ``(300,)``
            with ``lvis``.
        lvis: LVIS's defaults (see the module docstring).
        iou_thresholds: ``T`` IoU thresholds (COCO's by default).
        area_ranges: ``(name, low, high)`` ranges, inclusive at both ends (COCO's by
            default; ``"all"`` gets no suffix in the summary keys).

    Raises:
        InputError: A budget below 1, or no thresholds or area ranges.
    """

    def __init__(
        self,
        *,
        max_dets: Sequence[int] | None = None,
        lvis: bool = False,
        iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
        area_ranges: Sequence[tuple[str, float, float]] = AREA_RANGES,
    ) -> None:
        self.max_dets = _budgets(max_dets, lvis)
        self.iou_thresholds = tuple(float(t) for t in iou_thresholds)
        self.area_ranges = tuple((str(n), float(lo), float(hi)) for n, lo, hi in area_ranges)
        if not self.iou_thresholds or not self.area_ranges:
            raise InputError("need at least one IoU threshold and one area range")
        self._thresholds = np.array([min(t, 1 - 1e-10) for t in self.iou_thresholds])
        shape = (len(self.area_ranges), len(self.iou_thresholds), len(self.max_dets))
        self._matched = np.zeros(shape, dtype=np.int64)  # AxTxM
        self._num_gt = np.zeros(len(self.area_ranges), dtype=np.int64)
        self.num_images = 0

    def add(
        self,
        gt_masks: MaskSet,
        proposals: Proposals | tuple[MaskSet, npt.ArrayLike],
        gt_areas: npt.ArrayLike | None = None,
    ) -> None:
        """Add one image: its ``G`` ground truths, ``(masks, scores)`` and optional areas.

        Raises:
            InputError: Inconsistent lengths or sizes, a bad mask or RLE, NaN scores.
        """
        what = f"image {self.num_images}"
        truth = encode_masks(gt_masks, f"{what}: ground truth")
        masks, scores = proposals
        areas = truth.areas if gt_areas is None else np.asarray(gt_areas, dtype=np.float64)
        if areas.shape != (len(truth),):
            raise InputError(f"{what}: {len(truth)} ground truths but {areas.size} areas")
        ignored = np.array([(areas < lo) | (areas > hi) for _, lo, hi in self.area_ranges])
        ignored = ignored.reshape(len(self.area_ranges), len(truth))  # AxG
        top = _ranked(masks, scores, self.max_dets[-1], f"{what}: proposals")
        if len(truth) and top:
            ranked = encode_masks(top, f"{what}: proposals")
            if ranked.size != truth.size:
                raise InputError(
                    f"{what}: proposals are {ranked.size}, ground truth {truth.size} (HxW)"
                )
            rank = _match(runs_iou(ranked, truth), ignored, self._thresholds)  # AxTxG
            found = rank[..., None] < np.asarray(self.max_dets)  # AxTxGxM
            self._matched += (found & ~ignored[:, None, :, None]).sum(axis=2)
        self._num_gt += (~ignored).sum(axis=1)
        self.num_images += 1

    def result(self) -> RecallResult:
        """The recall table of the images added so far."""
        num_gt = self._num_gt[:, None, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(num_gt > 0, self._matched / np.maximum(num_gt, 1), np.nan)
        return RecallResult(
            recall=np.ascontiguousarray(recall.transpose(1, 0, 2), dtype=np.float64),
            iou_thresholds=self.iou_thresholds,
            area_ranges=self.area_ranges,
            max_dets=self.max_dets,
            num_gt=tuple(int(n) for n in self._num_gt),
            num_images=self.num_images,
        )


def proposals_from_records(records: Sequence[Mapping[str, Any]]) -> Proposals:
    """SegEvery records -> proposals ranked by ``predicted_iou * stability_score`` (SAM's).

    Args:
        records: :meth:`segany.MaskGenerator.generate` output: dicts with
            ``segmentation`` (``HxW`` bool array or RLE dict), ``predicted_iou`` and
            ``stability_score``.

    Returns:
        The masks in decreasing score order (ties keep the records' order) and their
        scores; a NaN score (the stability of a mask empty at the lower cut) becomes
        ``-inf``.

    Raises:
        InputError: A record lacks one of the three keys.
    """
    try:
        scores = np.array(
            [float(r["predicted_iou"]) * float(r["stability_score"]) for r in records],
            dtype=np.float64,
        )
        masks = [r["segmentation"] for r in records]
    except (KeyError, TypeError) as error:
        raise InputError(
            "a SegEvery record needs 'segmentation', 'predicted_iou' and 'stability_score'"
        ) from error
    scores[np.isnan(scores)] = -np.inf
    order = np.argsort(-scores, kind="stable")
    return Proposals([masks[k] for k in order], scores[order])


# ----------------------------------------------------------------------------- matching
def _match(
    iou: npt.NDArray[np.float64], ignored: npt.NDArray[np.bool_], thresholds: npt.NDArray[Any]
) -> npt.NDArray[np.int64]:
    """COCO's greedy matching of ``D`` ranked proposals to ``G`` ground truths.

    Args:
        iou: ``DxG``, rows in rank order.
        ignored: ``AxG``, ground truths outside each area range.
        thresholds: ``T`` effective thresholds (already capped at ``1 - 1e-10``).

    Returns:
        ``AxTxG`` rank of the proposal matched to each ground truth, or a huge number.
    """
    num_gt = iou.shape[1]
    rank = np.full((len(ignored), len(thresholds), num_gt), _NEVER, dtype=np.int64)
    # Only pairs at or above the lowest threshold can ever match.
    hits = iou >= thresholds.min()
    rows = np.flatnonzero(hits.any(axis=1))
    candidates = [
        (int(d), [(int(g), float(iou[d, g])) for g in np.flatnonzero(hits[d])]) for d in rows
    ]
    for a, skip_list in enumerate(ignored.tolist()):
        for t, threshold in enumerate(thresholds.tolist()):
            taken = [False] * num_gt
            left = num_gt
            for d, pairs in candidates:
                best, best_iou = -1, threshold
                for inside in (True, False):  # ground truths in the range first
                    for g, value in pairs:
                        if taken[g] or skip_list[g] == inside or value < best_iou:
                            continue
                        best, best_iou = g, value  # ">=": ties go to the later one
                    if best >= 0:
                        break
                if best >= 0:
                    taken[best] = True
                    rank[a, t, best] = d
                    left -= 1
                    if left == 0:
                        break
    return rank


def _budgets(max_dets: Sequence[int] | None, lvis: bool) -> tuple[int, ...]:
    if max_dets is None:
        return LVIS_MAX_DETS if lvis else COCO_MAX_DETS
    values = []
    for value in max_dets:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise InputError(f"max_dets must be whole numbers >= 1; got {list(max_dets)}")
        values.append(int(value))
    if not values:
        raise InputError("max_dets must not be empty")
    return tuple(sorted(set(values)))


def _ranked(masks: MaskSet, scores: npt.ArrayLike, limit: int, what: str) -> list[Any]:
    """The top ``limit`` masks by decreasing score (stable, as COCO's mergesort)."""
    try:
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise InputError(f"{what}: scores must be numbers") from error
    items = mask_list(masks, what)
    if len(items) != len(values):
        raise InputError(f"{what}: {len(items)} masks but {len(values)} scores")
    if np.isnan(values).any():
        raise InputError(f"{what}: scores must not be NaN")
    order = np.argsort(-values, kind="stable")[:limit]
    return [items[k] for k in order]
