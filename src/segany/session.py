"""Interactive click sessions: clicks accumulate on one object, each answered with the
previous answer's logits as ``mask_input``, and each corrective click's answer merged
into the previous mask where the click asked for a change.

A corrective click says "this pixel is wrong". The model answers the whole prompt again,
and its new mask can also change regions the user had already accepted (on the bundled
model, the best mask seen during corrective clicks beats the last one: docs/training.md,
"Corrective clicks merged into the previous mask"). :func:`progressive_merge` keeps the
previous mask and changes only the region around the click that the new answer changed
(the "progressive merge" of FocalClick, Chen et al., CVPR 2022): the connected part,
holding the click, of the pixels the answer added (a positive click) or removed (a
negative one), cut to a disc around the click a few times the click's depth in it. The
model's own logits still go back as the next ``mask_input``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .errors import InputError
from .predictor import Prediction

REACH = 5.0  # a merged change reaches 5x the click's depth in it (progressive_merge)


def progressive_merge(
    previous: np.ndarray,
    new: np.ndarray,
    click: tuple[float, float],
    label: int,
    reach: float | None = REACH,
) -> np.ndarray | None:
    """``previous`` (HxW bool) changed only where the ``new`` HxW mask changed it around
    ``click`` (x, y in pixels): with ``label`` 1, plus the 8-connected part of ``new &
    ~previous`` holding the click; with 0, minus the part of ``previous & ~new`` holding
    it. With ``reach``, the part is cut to a disc around the click, its radius ``reach``
    times the click's depth in the part (its distance to the part's edge, at least 1 px).
    None when ``new`` does not change the clicked pixel (it does not follow the click)."""
    height, width = previous.shape
    x, y = int(np.floor(click[0])), int(np.floor(click[1]))
    if not (0 <= x < width and 0 <= y < height):
        raise InputError(
            f"the click ({click[0]}, {click[1]}) lies outside the {width}x{height} mask"
        )
    changed = (new & ~previous) if label == 1 else (previous & ~new)
    if not changed[y, x]:
        return None
    part = _part_at(changed, x, y)
    if reach is not None:
        import cv2  # (imported on first use: OpenCV is heavy to load)

        inside = np.pad(part, 1).astype(np.uint8)
        depth = max(float(cv2.distanceTransform(inside, cv2.DIST_L2, 5)[y + 1, x + 1]), 1.0)
        rows, cols = np.ogrid[:height, :width]
        near = (cols - click[0]) ** 2 + (rows - click[1]) ** 2 <= (reach * depth) ** 2
        part = _part_at(part & near, x, y)
    return (previous | part) if label == 1 else (previous & ~part)


def _part_at(mask: np.ndarray, x: int, y: int) -> np.ndarray:
    """The 8-connected part of HxW bool ``mask`` holding pixel (``x``, ``y``)."""
    import cv2

    _, parts = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return parts == parts[y, x]


class Prompter(Protocol):
    """What answers prompts on an image: a :class:`~segany.predictor.Predictor`, or a
    layer with its ``set_image`` and ``predict`` (:class:`segany.refine.StagedPredictor`).
    A session clicks on its current image."""

    def set_image(self, image: Any) -> None: ...

    def predict(
        self,
        points: Any = None,
        labels: Any = None,
        box: Any = None,
        mask_input: Any = None,
        multimask: bool = True,
        return_logits: bool = False,
    ) -> Prediction: ...


@dataclass
class ClickSession:
    """One object segmented by clicks on ``predictor``'s current image.

    The first click is answered with 3 masks and the best-scored kept; every later click
    with all clicks so far, the kept answer's low-res logits as ``mask_input``, 3 masks
    (``multimask=False``: SAM's single-mask protocol) and the best-scored kept, then
    merged into the previous mask (:func:`progressive_merge`, within ``reach``;
    ``merge=False`` keeps the model's answer as it is). An answer that does not follow
    its click leaves the previous mask unchanged.

    Example::

        session = ClickSession(predictor)
        session.click(120, 80)                   # the object
        mask = session.click(140, 95, positive=False).mask   # not this part
    """

    predictor: Prompter
    merge: bool = True
    reach: float | None = REACH
    multimask: bool = True
    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    mask: np.ndarray | None = None
    logits: np.ndarray | None = None
    history: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list, repr=False)

    def click(self, x: float, y: float, positive: bool = True) -> ClickSession:
        """Add a click at pixel (``x``, ``y``) of the original image; returns the session,
        whose :attr:`mask` (HxW bool) and :attr:`logits` (hxw) are the new answer."""
        points, labels = self._with_click(x, y, positive)
        # the first click: 3 masks and no previous answer to feed back
        previous: dict[str, Any] = {} if self.logits is None else {"mask_input": self.logits[None]}
        answer = self.predictor.predict(
            points=points, labels=labels, multimask=not previous or self.multimask, **previous
        )
        return self.add(x, y, positive, answer)

    def add(self, x: float, y: float, positive: bool, answer: Prediction) -> ClickSession:
        """Add a click whose ``answer`` (of this session's clicks and this one, from the
        predictor's ``predict``) is already known: its best-scored mask is kept, merged as
        :meth:`click` merges."""
        points, labels = self._with_click(x, y, positive)
        mask, logits = _best(answer)
        if self.mask is not None and self.logits is not None:
            self.history.append((self.mask, self.logits))
            if self.merge:
                merged = progressive_merge(self.mask, mask, (x, y), labels[-1], self.reach)
                mask = self.mask if merged is None else merged
        self.points, self.labels = points, labels
        self.mask, self.logits = mask, logits
        return self

    def _with_click(
        self, x: float, y: float, positive: bool
    ) -> tuple[list[tuple[float, float]], list[int]]:
        """This session's clicks and labels with one more click (checked: a session starts
        with a positive click, refused before any prediction runs)."""
        if not self.points and not positive:
            raise InputError("a session starts with a positive click on the object")
        return [*self.points, (float(x), float(y))], [*self.labels, int(bool(positive))]

    def undo(self) -> ClickSession:
        """Forget the last click (and its answer)."""
        if not self.points:
            raise InputError("nothing to undo: the session has no clicks")
        self.points, self.labels = self.points[:-1], self.labels[:-1]
        if self.history:
            self.mask, self.logits = self.history.pop()
        else:
            self.mask = self.logits = None
        return self


def _best(answer: Prediction) -> tuple[np.ndarray, np.ndarray]:
    """The best-scored mask (HxW) of a single prompt's ``answer`` and its low-res logits."""
    best = int(np.argmax(answer.scores))
    return answer.masks[best], answer.low_res_logits[best]
