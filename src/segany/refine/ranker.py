"""Re-ranking a click's three candidate masks after graph-cut snapping.

The decoder's IoU head scores the masks it drew; graph-cut snapping
(:mod:`segany.refine.graph_cut`) then changes them, and by how much depends on the mask:
a whole object snaps cleanly to its colour edges, a blob that covers half of two parts
does not. The ranker predicts the IoU of each *snapped* mask from what the pipeline
already has — the decoder's scores, each mask's area before and after the cut, how much
the cut moved it, and how much the three snapped masks overlap — so the mask a click
answers with is the one most likely to be the object. A small MLP (18 or 30 → 64 → 64
→ 3) trained on generated scenes (:mod:`segany.refine.train_ranker`).

Rankers come in three kinds (:data:`RANKER_KINDS`). A click ranker (``"clicks"``) also
reads where the clicks sit in each mask (:func:`click_features`: 12 more inputs): the
object a centre click means holds it deep inside, and a negative click outside. A box
ranker (``"boxes"``) reads how each mask fits the box (:func:`box_features`: 12 more): a
whole object fills its tight box edge to edge, a part does not. A box-cut ranker
(``"box_cut"``) is a box ranker whose candidates are the decoder's first and third masks
and, in the second place (:data:`BOX_CUT_SLOT`), the box's own graph cut
(:meth:`~segany.refine.graph_cut.GraphCut.cut_box`, seeded by the box alone): on a tight
box GrabCut alone beats the model's masks, on a box drawn loosely it does not, and the
ranker tells the two apart from how each candidate fits the box. A mask ranker
(``"masks"``, the click ranker of files written before ranker kinds existed) reads the 18
alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.masks import binary_iou
from .graph_cut import GraphCut, threaded_map

CANDIDATES = 3  # SAM's ambiguity-aware masks
NUM_FEATURES = 6 * CANDIDATES
BOX_FEATURES = 4 * CANDIDATES  # what a box ranker reads besides (box_features)
CLICK_FEATURES = 4 * CANDIDATES  # what a click ranker reads besides (click_features)
RANKER_KINDS = ("masks", "clicks", "boxes", "box_cut")  # see the module doc
BOX_KINDS = ("boxes", "box_cut")  # the kinds that rank a box's masks
BOX_CUT_SLOT = 1  # the candidate a "box_cut" ranker reads as the box's own cut
_EXTRA_FEATURES = {"masks": 0, "clicks": CLICK_FEATURES, "boxes": BOX_FEATURES}
_EXTRA_FEATURES["box_cut"] = BOX_FEATURES


@dataclass(frozen=True)
class RankerConfig:
    """Width of the ranker's two hidden layers and its ``kind`` (:data:`RANKER_KINDS`):
    what it reads besides the masks — the clicks (:func:`click_features`), the box
    (:func:`box_features`) or nothing (``"masks"``)."""

    hidden: int = 64
    kind: str = "clicks"

    def __post_init__(self) -> None:
        if self.hidden < 1:
            raise ValueError(f"hidden must be at least 1, got {self.hidden}")
        if self.kind not in RANKER_KINDS:
            raise ValueError(f"kind must be one of {RANKER_KINDS}, got {self.kind!r}")

    @property
    def features(self) -> int:
        """The number of inputs: 18 for a mask ranker, 30 for the others."""
        return NUM_FEATURES + _EXTRA_FEATURES[self.kind]


def ranking_features(
    scores: np.ndarray,
    raw: np.ndarray,
    snapped: np.ndarray,
    box: np.ndarray | None = None,
    clicks: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The ranker's inputs for one prompt's candidates.

    Arguments:
      scores: 3 predicted IoUs of the decoder. raw: 3xHxW bool masks before the cut;
        snapped: 3xHxW bool masks after it. box: the prompt's XYXY box (4,), for a box
        ranker, or None. clicks: the prompt's points Nx2 (x, y pixels) and labels N, for
        a click ranker, or None.

    Returns:
      (18,) float32: scores; IoU(raw, snapped) per mask; log area of the snapped and of the
      raw mask as fractions of the image; log of their ratio; pairwise IoU of the snapped
      masks (0-1, 0-2, 1-2). With ``box``, the :func:`box_features` appended, and with
      ``clicks``, the :func:`click_features` (30 with one of them).
    """
    if raw.shape != snapped.shape or raw.shape[0] != CANDIDATES or len(scores) != CANDIDATES:
        raise ValueError(
            f"expected 3 scores and two 3xHxW mask stacks; got {len(scores)}, "
            f"{raw.shape}, {snapped.shape}"
        )
    pixels = raw[0].size
    snap_area = snapped.reshape(CANDIDATES, -1).sum(1).astype(np.float64)
    raw_area = raw.reshape(CANDIDATES, -1).sum(1).astype(np.float64)
    agree = [binary_iou(a, b) for a, b in zip(raw, snapped, strict=True)]
    pairs = [binary_iou(snapped[i], snapped[j]) for i, j in itertools.combinations(range(3), 2)]
    parts = [
        np.asarray(scores, dtype=np.float64),
        np.asarray(agree),
        np.log(snap_area / pixels + 1e-6),
        np.log(raw_area / pixels + 1e-6),
        np.log((snap_area + 1) / (raw_area + 1)),
        np.asarray(pairs),
    ]
    if box is not None:
        parts.append(box_features(box, raw, snapped))
    if clicks is not None:
        parts.append(click_features(*clicks, snapped))
    return np.concatenate(parts).astype(np.float32)


def with_box_cut(
    raw: np.ndarray, snapped: np.ndarray, seed: np.ndarray, cut: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A box-cut ranker's candidates: 3xHxW ``raw`` and ``snapped`` masks (the decoder's,
    before and after their cut) with the :data:`BOX_CUT_SLOT` one replaced by the box's own
    ``seed`` (the filled box) and ``cut`` (:meth:`GraphCut.cut_box`'s two masks; copies)."""
    raw, snapped = raw.copy(), snapped.copy()
    raw[BOX_CUT_SLOT], snapped[BOX_CUT_SLOT] = seed, cut
    return raw, snapped


def box_cut_candidates(
    graph_cut: GraphCut,
    image: np.ndarray,
    masks: np.ndarray,
    box: np.ndarray,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """A box's candidates as a box-cut ranker reads them: from the decoder's 3xHxW
    ``masks`` for ``box`` (XYXY), the raw and the snapped 3xHxW masks, every mask but the
    :data:`BOX_CUT_SLOT` one snapped by ``graph_cut`` and that one the box's own cut
    (:func:`with_box_cut`; the decoder's mask there is not cut at all). The cuts run on
    up to ``threads`` threads."""

    def cut(c: int) -> tuple[np.ndarray, ...]:
        """Mask ``c`` snapped, or in the box-cut slot the box's own (seed, cut)."""
        if c == BOX_CUT_SLOT:
            return graph_cut.cut_box(image, box)
        return (graph_cut(image, masks[c], box=box),)

    results = threaded_map(cut, range(len(masks)), threads)
    snapped = masks.copy()
    for c, result in enumerate(results):
        if c != BOX_CUT_SLOT:
            snapped[c] = result[0]
    return with_box_cut(masks, snapped, *results[BOX_CUT_SLOT])


def click_features(points: np.ndarray, labels: np.ndarray, snapped: np.ndarray) -> np.ndarray:
    """Where a prompt's clicks sit in each of its 3 snapped masks: (12,) float64.

    Arguments:
      points: Nx2 (x, y) in pixels, the first one positive (as a click session's is).
      labels: N, 1 positive, 0 negative. snapped: 3xHxW bool masks.

    Returns:
      per mask: the first click's depth in it (its distance transform there over the
      mask's deepest point); the share of positive clicks inside; the share of negative
      clicks inside; the first click's distance to the mask's centroid over sqrt(area)
      (an empty mask: 0, 0, 0, 3).
    """
    import cv2  # (imported on first use: OpenCV is heavy to load)

    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1)
    if len(points) == 0 or len(points) != len(labels):
        raise ValueError(f"expected N >= 1 points and N labels, got {len(points)}, {len(labels)}")
    height, width = snapped.shape[1:]
    at = np.clip(points.astype(int), 0, [width - 1, height - 1])
    positive, negative = labels == 1, labels == 0
    out: list[float] = []
    for mask in snapped:
        extent = _extent(mask)
        if extent is None:
            out += [0.0, 0.0, 0.0, 3.0]
            continue
        # the mask's bounding box and a ring of 1 px (the image's edge is not a boundary):
        # distances inside it are the whole image's, at a fraction of the cost
        y0, x0 = max(extent[1] - 1, 0), max(extent[0] - 1, 0)
        crop = mask[y0 : extent[3] + 2, x0 : extent[2] + 2].astype(np.uint8)
        depth = cv2.distanceTransform(crop, cv2.DIST_L2, 3)
        moments = cv2.moments(crop, binaryImage=True)
        area = moments["m00"]
        centre = (x0 + moments["m10"] / area, y0 + moments["m01"] / area)
        away = np.hypot(centre[0] - points[0, 0], centre[1] - points[0, 1]) / np.sqrt(area)
        inside = mask[at[:, 1], at[:, 0]]
        first = depth[at[0, 1] - y0, at[0, 0] - x0] if inside[0] else 0.0
        out += [
            float(first / (depth.max() + 1e-6)),
            float(inside[positive].mean()) if positive.any() else 1.0,
            float(inside[negative].mean()) if negative.any() else 0.0,
            float(away),
        ]
    return np.asarray(out, dtype=np.float64)


def box_features(box: np.ndarray, raw: np.ndarray, snapped: np.ndarray) -> np.ndarray:
    """How a box's 3 masks fit it: (12,) float64.

    Arguments:
      box: XYXY (4,) in pixels, right and bottom edges inclusive (as a tight box is).
      raw, snapped: 3xHxW bool masks before and after the cut.

    Returns:
      the IoU of each snapped mask's bounding box with ``box`` (3), the same for the raw
      masks (3), the log of each snapped mask's area over the box's (3) and the share of
      each snapped mask outside the box (3).
    """
    height, width = snapped.shape[1:]
    x0, y0, x1, y1 = np.round(np.asarray(box, dtype=np.float64)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width - 1), min(y1, height - 1)
    box_area = max(x1 - x0 + 1, 0) * max(y1 - y0 + 1, 0) + 1.0
    area = snapped.reshape(CANDIDATES, -1).sum(1).astype(np.float64)
    inside = snapped[:, y0 : y1 + 1, x0 : x1 + 1].reshape(CANDIDATES, -1).sum(1)
    parts = [
        [_bbox_iou(m, (x0, y0, x1, y1)) for m in snapped],
        [_bbox_iou(m, (x0, y0, x1, y1)) for m in raw],
        np.log(area / box_area + 1e-4),
        (area - inside) / (area + 1),
    ]
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])


def _bbox_iou(mask: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """IoU of ``mask``'s bounding box with the inclusive XYXY ``box`` (0 for an empty mask)."""
    tight = _extent(mask)
    if tight is None:
        return 0.0
    overlap = [max(tight[0], box[0]), max(tight[1], box[1])]
    overlap += [min(tight[2], box[2]), min(tight[3], box[3])]

    def area(r: Sequence[int]) -> int:
        return max(r[2] - r[0] + 1, 0) * max(r[3] - r[1] + 1, 0)

    inter = area(overlap)
    return inter / (area(tight) + area(box) - inter)


def _extent(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The inclusive XYXY bounding box of an HxW bool mask; None for an empty one."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if len(rows) == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


class MaskRanker(nn.Module):
    """Predicted IoU of snapped masks: BxF features (:func:`ranking_features`) -> Bx3.

    ``mean`` and ``std`` standardise the features (set by training, saved with it); the
    kind is saved as a ``kind`` tensor (its index in :data:`RANKER_KINDS`).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, config: RankerConfig | None = None) -> None:
        super().__init__()
        self.config = config or RankerConfig()
        width, inputs = self.config.hidden, self.config.features
        self.register_buffer("mean", torch.zeros(inputs))
        self.register_buffer("std", torch.ones(inputs))
        self.mlp = nn.Sequential(
            nn.Linear(inputs, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, CANDIDATES),
        )

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor]) -> MaskRanker:
        """A ranker from :meth:`export`'s tensors (its width and kind read from them; a
        file without ``kind`` is from before ranker kinds: 18 inputs a mask ranker, 30 a
        box ranker)."""
        tensors = dict(state_dict)
        weight = tensors.get("mlp.0.weight")
        if weight is None or weight.ndim != 2:
            raise ValueError("no mlp.0.weight: not a mask ranker")
        inputs = int(weight.shape[1])
        code = tensors.pop("kind", None)
        if code is None:
            kind = "masks" if inputs == NUM_FEATURES else "boxes"
        elif code.numel() == 1 and 0 <= int(code) < len(RANKER_KINDS):
            kind = RANKER_KINDS[int(code)]
        else:
            raise ValueError(f"kind {code.tolist()} is not one of 0..{len(RANKER_KINDS) - 1}")
        config = RankerConfig(hidden=int(weight.shape[0]), kind=kind)
        if inputs != config.features:
            raise ValueError(f"{inputs} inputs, not the {config.features} of a {kind!r} ranker")
        ranker = cls(config)
        ranker.load_state_dict(tensors)
        return ranker.eval()

    def export(self) -> dict[str, torch.Tensor]:
        """The tensors to save (safetensors-ready), its kind among them."""
        tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        tensors["kind"] = torch.tensor([RANKER_KINDS.index(self.config.kind)])
        return tensors

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """BxF raw features -> Bx3 logits of the snapped masks' IoU."""
        return self.mlp((features - self.mean) / self.std)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """BxF raw features -> Bx3 predicted IoU in [0, 1]."""
        return torch.sigmoid(self.logits(features))

    @torch.inference_mode()
    def rank(
        self,
        scores: np.ndarray,
        raw: np.ndarray,
        snapped: np.ndarray,
        box: np.ndarray | None = None,
        clicks: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """The 3 predicted IoUs of ``snapped`` (arguments as :func:`ranking_features`;
        a box ranker needs ``box`` and a click ranker ``clicks``; what a ranker's kind
        does not read is ignored)."""
        kind = self.config.kind
        if kind in BOX_KINDS and box is None:
            raise ValueError("a box ranker ranks the masks of a box: give the box")
        if kind == "clicks" and clicks is None:
            raise ValueError("a click ranker ranks the masks of clicks: give the clicks")
        features = ranking_features(
            scores,
            raw,
            snapped,
            box if kind in BOX_KINDS else None,
            clicks if kind == "clicks" else None,
        )
        return self(torch.from_numpy(features)[None].to(self.mean.dtype))[0].float().numpy()
