"""A simulated annotator following SAM's data-engine protocol: it clicks until the model's
mask is good enough, or gives up.

For each ground-truth object the annotator clicks the object's centre (the pixel farthest
from its boundary, :func:`~segany.data.masks.interior_point`), then, while the model's
mask has IoU < ``accept_iou`` (0.9) with the ground truth, a corrective click at the
centre of the larger error region (:func:`~segany.data.masks.corrective_click`, the same
click ``segany eval`` makes: the pixel farthest from the boundary of the missed pixels,
positive, or of the wrongly included ones, negative, whichever region is larger). It
accepts the mask as soon as its IoU reaches ``accept_iou`` and gives up after
``max_clicks`` (5) clicks.

What it keeps is **the model's mask**, never the ground truth: the data engine's
annotations are masks a user accepted, and the ground truth only plays the user's eyes.

The model is reached through a ``decode(points, labels) -> mask`` callable
(:data:`Decode`), so the same annotator drives a :class:`segany.Predictor`
(:class:`SessionDecoder`) or any other decoder, such as a server's decode API.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..data.masks import binary_iou, corrective_click, interior_point
from ..session import ClickSession, Prompter

__all__ = [
    "ACCEPT_IOU",
    "MAX_CLICKS",
    "Annotation",
    "Decode",
    "SessionDecoder",
    "annotate_image",
    "annotate_object",
    "annotate_scene",
    "summarize_annotations",
]

#: IoU with the ground truth at which the annotator accepts a mask.
ACCEPT_IOU = 0.9
#: Clicks after which the annotator gives up on an object.
MAX_CLICKS = 5

Decode = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``decode(points, labels) -> mask``: all the clicks on one object so far, ``Kx2`` float
(x, y) pixel coordinates and ``K`` int labels (1 object, 0 background), answered with an
``HxW`` bool mask. Called with 1, 2, ... clicks in turn for each object."""


@dataclass(frozen=True)
class Annotation:
    """The outcome of annotating one object.

    Attributes:
        accepted: Whether a mask reached the acceptance IoU within the click budget.
        clicks: Clicks made (1 to ``max_clicks``).
        mask: ``HxW`` bool, the model's mask after the last click: the accepted mask when
            ``accepted``, else the one the annotator gave up on.
        iou: IoU of ``mask`` with the ground truth.
        points: ``Kx2`` float (x, y) clicks; labels: ``K`` int (1 positive, 0 negative).
    """

    accepted: bool
    clicks: int
    mask: np.ndarray
    iou: float
    points: np.ndarray
    labels: np.ndarray


def annotate_object(
    decode: Decode,
    truth: np.ndarray,
    accept_iou: float = ACCEPT_IOU,
    max_clicks: int = MAX_CLICKS,
) -> Annotation:
    """Click on one object until ``decode``'s mask is accepted or ``max_clicks`` are spent.

    Args:
        decode: The model (:data:`Decode`).
        truth: ``HxW`` bool ground truth of the object, not empty.
        accept_iou: IoU with ``truth`` at which a mask is accepted.
        max_clicks: Clicks after which the annotator gives up (at least 1).

    Raises:
        ValueError: ``truth`` is empty, or ``max_clicks`` < 1.
    """
    if max_clicks < 1:
        raise ValueError(f"max_clicks must be at least 1, got {max_clicks}")
    if not truth.any():
        raise ValueError("cannot annotate an empty ground-truth mask")
    points: list[tuple[float, float]] = [interior_point(truth)]
    labels = [1]
    while True:
        mask = np.asarray(decode(np.array(points), np.array(labels)), dtype=bool)
        if mask.shape != truth.shape:
            raise ValueError(f"decode answered a {mask.shape} mask for a {truth.shape} object")
        score = binary_iou(mask, truth)
        accepted = score >= accept_iou
        if accepted or len(points) == max_clicks:
            break
        click = corrective_click(truth, mask)
        if click is None:  # exact mask below the threshold: only when accept_iou > 1
            break
        points.append(click[0])
        labels.append(click[1])
    return Annotation(
        accepted, len(points), mask, score, np.array(points), np.array(labels, dtype=np.int64)
    )


def annotate_scene(
    decode: Decode,
    masks: Iterable[np.ndarray],
    accept_iou: float = ACCEPT_IOU,
    max_clicks: int = MAX_CLICKS,
) -> list[Annotation]:
    """:func:`annotate_object` for each ``HxW`` ground-truth mask of ``masks`` in turn."""
    return [annotate_object(decode, truth, accept_iou, max_clicks) for truth in masks]


class SessionDecoder:
    """A :data:`Decode` on a predictor's current image, as a user of a
    :class:`~segany.session.ClickSession` gets its answers: the first click answered with
    3 masks and the best-scored kept, each later click with all clicks so far and the
    previous answer's low-res logits as ``mask_input`` (3 masks, the best-scored kept, or
    SAM's single-mask output with ``multimask=False``), merged into the previous mask only
    with ``merge=True``.

    Clicks that extend the previous call's by one continue its session; any others (a
    new object) start a new one, replaying them.
    """

    def __init__(self, predictor: Prompter, multimask: bool = True, merge: bool = False):
        self.predictor = predictor
        self.multimask = multimask
        self.merge = merge
        self.session: ClickSession | None = None

    def __call__(self, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
        clicks = [(float(x), float(y)) for x, y in np.asarray(points, dtype=np.float64)]
        kinds = [int(v) for v in np.asarray(labels)]
        session = self.session
        if (
            session is None
            or len(clicks) != len(session.points) + 1
            or clicks[:-1] != session.points
            or kinds[:-1] != session.labels
        ):
            session = ClickSession(self.predictor, merge=self.merge, multimask=self.multimask)
            todo = range(len(clicks))
        else:
            todo = range(len(clicks) - 1, len(clicks))
        for i in todo:
            session.click(*clicks[i], positive=bool(kinds[i]))
        self.session = session
        assert session.mask is not None
        return session.mask


def annotate_image(
    predictor: Prompter,
    image: np.ndarray,
    masks: Iterable[np.ndarray],
    accept_iou: float = ACCEPT_IOU,
    max_clicks: int = MAX_CLICKS,
    multimask: bool = True,
    merge: bool = False,
) -> list[Annotation]:
    """Set ``image`` (``HxWx3`` uint8) on ``predictor`` and annotate each ground-truth mask
    of ``masks`` through a :class:`SessionDecoder` (``multimask``, ``merge``)."""
    predictor.set_image(image)
    decode = SessionDecoder(predictor, multimask=multimask, merge=merge)
    return annotate_scene(decode, masks, accept_iou, max_clicks)


def summarize_annotations(annotations: Sequence[Annotation]) -> dict[str, float]:
    """The annotator's figures over ``annotations``.

    Returns:
        ``objects``; ``accepted`` (count) and ``acceptance_rate``; ``clicks_per_accepted``
        (mean clicks of the accepted masks, NaN when none); ``clicks_per_object`` (all
        clicks, those spent on objects given up included, per object); ``mean_iou`` (of
        the final masks, accepted or not); NaN rates when there are no objects.
    """
    count = len(annotations)
    accepted = [a for a in annotations if a.accepted]
    nan = math.nan
    return {
        "objects": float(count),
        "accepted": float(len(accepted)),
        "acceptance_rate": len(accepted) / count if count else nan,
        "clicks_per_accepted": float(np.mean([a.clicks for a in accepted])) if accepted else nan,
        "clicks_per_object": float(np.mean([a.clicks for a in annotations])) if count else nan,
        "mean_iou": float(np.mean([a.iou for a in annotations])) if count else nan,
    }
