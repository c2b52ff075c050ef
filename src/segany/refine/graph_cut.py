"""Graph-cut snapping: a mask's final boundary from the image's colours.

The last stage of the :class:`~segany.Predictor` pipeline for models whose masks do not
follow colour edges (the bundled ``segany_shapes``): each full-size mask seeds GrabCut
(Rother et al. 2004; OpenCV's implementation) inside the prompt's region, as the mask
refiner seeds its colour model at the low-res grid. Pixels of the mask start as
"probably object", the rest of the region as "probably background"; everything outside
the region is background; positive clicks are object and negative clicks background,
for certain. Colour mixture models and a minimum cut then decide every pixel of the
region, a few times over. The region is the box, when there is one, grown by
``box_margin``; else the mask's bounding box with its positive clicks, grown by
``mask_margin`` (the answer may reach past a mask that stopped short).

:meth:`GraphCut.cut_box` is GrabCut's own use, without a model: the box alone seeds it
(everything inside it "probably object", no margin around it). It is the third reading
of a box that a ``"box_cut"`` box ranker chooses among (:mod:`segany.refine.ranker`).

Only the full-size boolean masks change: predicted IoU and low-res logits stay the
decoder's (and the refiner's), so the logits fed back as ``mask_input`` are the model's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from ..data.masks import box_fill

__all__ = ["GraphCut", "grow_mask", "threaded_map"]

T = TypeVar("T")
R = TypeVar("R")


def threaded_map(fn: Callable[[T], R], items: Sequence[T], threads: int) -> list[R]:
    """``[fn(x) for x in items]`` on up to ``threads`` threads, in order. GrabCut runs on
    one core and releases the GIL, so a prompt's cuts (3 masks, or 3 per box) run side by
    side."""
    workers = min(threads, len(items))
    if workers <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(workers, thread_name_prefix="segany-cut") as pool:
        return list(pool.map(fn, items))


def grow_mask(mask: npt.NDArray[np.bool_], pixels: int) -> npt.NDArray[np.bool_]:
    """HxW bool ``mask`` dilated by ``pixels`` on every side (a square neighbourhood), or
    eroded when ``pixels`` is negative; unchanged for 0, an empty mask, or an erosion that
    would leave nothing."""
    import cv2

    if pixels == 0 or not mask.any():
        return mask
    kernel = np.ones((2 * abs(pixels) + 1,) * 2, np.uint8)
    change = cv2.dilate if pixels > 0 else cv2.erode
    out = np.asarray(change(mask.astype(np.uint8), kernel)) > 0
    return out if out.any() else mask


@dataclass(frozen=True)
class GraphCut:
    """GrabCut seeded by a mask, inside its prompt's region.

    Arguments:
      iterations (int): rounds of colour-model estimation and minimum cut.
      box_margin (float): a box prompt's region grows by this fraction of its sides,
        plus ``pad`` pixels (boxes drawn by hand are rarely tight).
      mask_margin (float): without a box, the mask's bounding box grows by this fraction.
      pad (int): pixels added to every side of the region.
      box_grow (int): a box prompt's mask is grown (dilated) by this many pixels before it
        seeds the cut. GrabCut keeps a seed that falls short of the object's edge more
        than one that overshoots it, so a slightly grown seed cuts better; click prompts
        are not grown (docs/training.md, "A box's seed grown by a pixel before the cut").
      context (int): pixels of background around the region that the background colour
        model also sees (the crop GrabCut runs on).
      max_side (int | None): a crop longer than this is cut at a lower resolution (the
        cut's time grows with the crop's pixels; the edge is then interpolated back).
        None: always at full resolution.
    """

    iterations: int = 3
    box_margin: float = 0.1
    mask_margin: float = 0.25
    pad: int = 2
    box_grow: int = 1
    context: int = 12
    max_side: int | None = 128

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if min(self.box_margin, self.mask_margin, self.pad, self.box_grow, self.context) < 0:
            raise ValueError("margins, pad, box_grow and context must be >= 0")
        if self.max_side is not None and self.max_side < 16:
            raise ValueError(f"max_side must be >= 16 or None, got {self.max_side}")

    def region(
        self,
        mask: npt.NDArray[np.bool_],
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
    ) -> tuple[int, int, int, int] | None:
        """Inclusive XYXY pixel region that the answer may cover, clipped to the image
        (None when there is nothing to seed it: no box, an empty mask, no positive click).
        """
        height, width = mask.shape
        if box is not None:
            x0, y0, x1, y1 = (float(v) for v in box)
            margin = self.box_margin
        else:
            ys, xs = np.nonzero(mask)
            if points is not None and labels is not None:
                positive = points[labels == 1]
                xs = np.concatenate([xs, positive[:, 0]])
                ys = np.concatenate([ys, positive[:, 1]])
            if len(xs) == 0:
                return None
            x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())
            margin = self.mask_margin
        grow_x = margin * (x1 - x0 + 1) + self.pad
        grow_y = margin * (y1 - y0 + 1) + self.pad
        left, top = max(0, int(x0 - grow_x)), max(0, int(y0 - grow_y))
        right = min(width - 1, int(np.ceil(x1 + grow_x)))
        bottom = min(height - 1, int(np.ceil(y1 + grow_y)))
        if right <= left or bottom <= top:
            return None
        return left, top, right, bottom

    def snap_all(
        self,
        image: npt.NDArray[np.uint8],
        masks: npt.NDArray[np.bool_],
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
        threads: int = 1,
    ) -> npt.NDArray[np.bool_]:
        """BxCxHxW ``masks`` (C per prompt; prompt b's box ``boxes[b]``, Bx4, or None for
        clicks) snapped in place, on up to ``threads`` threads."""
        jobs = [(b, c) for b in range(masks.shape[0]) for c in range(masks.shape[1])]

        def cut(job: tuple[int, int]) -> npt.NDArray[np.bool_]:
            b, c = job
            box = boxes[b] if boxes is not None else None
            return self(image, masks[b, c], points, labels, box)

        for (b, c), snapped in zip(jobs, threaded_map(cut, jobs, threads), strict=True):
            masks[b, c] = snapped
        return masks

    def __call__(
        self,
        image: npt.NDArray[np.uint8],
        mask: npt.NDArray[np.bool_],
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
    ) -> npt.NDArray[np.bool_]:
        """The snapped mask.

        Arguments:
          image: HxWx3 uint8 RGB, the original image.
          mask: HxW bool, the model's mask at the original size.
          points: Nx2 (x, y) clicks in pixels, labels: N (1 object, 0 background), or None.
          box: (4,) XYXY box in pixels, or None.

        Returns:
          HxW bool. The mask unchanged when GrabCut has nothing to work with (no region,
          a region of one colour, no pixel left that may be object).
        """
        import cv2  # (imported on first use: a heavy module most callers never need)

        seed = grow_mask(mask, self.box_grow) if box is not None else mask
        region = self.region(seed, points, labels, box)
        if region is None:
            return mask
        height, width = mask.shape
        left, top, right, bottom = region
        cx0, cy0 = max(0, left - self.context), max(0, top - self.context)
        cx1, cy1 = min(width, right + 1 + self.context), min(height, bottom + 1 + self.context)
        seeds = np.full((cy1 - cy0, cx1 - cx0), cv2.GC_BGD, np.uint8)
        inside = (slice(top - cy0, bottom + 1 - cy0), slice(left - cx0, right + 1 - cx0))
        seeds[inside] = np.where(seed[cy0:cy1, cx0:cx1][inside], cv2.GC_PR_FGD, cv2.GC_PR_BGD)
        crop = np.ascontiguousarray(image[cy0:cy1, cx0:cx1, ::-1])  # OpenCV wants BGR
        scale = min(1.0, self.max_side / max(seeds.shape)) if self.max_side else 1.0
        if scale < 1.0:  # a large crop: cut at a lower resolution, edges come back smooth
            small = (max(2, round(seeds.shape[1] * scale)), max(2, round(seeds.shape[0] * scale)))
            crop = np.asarray(cv2.resize(crop, small, interpolation=cv2.INTER_AREA), np.uint8)
            seeds = np.asarray(cv2.resize(seeds, small, interpolation=cv2.INTER_NEAREST), np.uint8)
        if points is not None and labels is not None:
            for (x, y), label in zip(points, labels, strict=True):
                col, row = int((x - cx0) * scale), int((y - cy0) * scale)
                if 0 <= row < seeds.shape[0] and 0 <= col < seeds.shape[1]:
                    seeds[row, col] = cv2.GC_FGD if label == 1 else cv2.GC_BGD
        if not np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).any():
            return mask
        background, foreground = np.zeros((1, 65)), np.zeros((1, 65))  # GMM scratch space
        unused_rect = (0, 0, 1, 1)  # (the seeds, not a rectangle, start the cut)
        cv2.setRNGSeed(0)  # GrabCut's k-means++ start draws from OpenCV's global RNG
        try:
            cv2.grabCut(crop, seeds, unused_rect, background, foreground, self.iterations,
                        cv2.GC_INIT_WITH_MASK)  # fmt: skip
        except cv2.error:  # one colour only: no mixture model to fit
            return mask
        found = ((seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)).astype(np.float32)
        if scale < 1.0:
            found = cv2.resize(found, (cx1 - cx0, cy1 - cy0), interpolation=cv2.INTER_LINEAR)
        out = np.zeros_like(mask)
        out[cy0:cy1, cx0:cx1] = found > 0.5
        return out

    def cut_box(
        self, image: npt.NDArray[np.uint8], box: np.ndarray
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """A box's own cut: GrabCut seeded by the filled box alone, inside the box (no
        ``box_margin``, no ``box_grow``; ``pad``, ``context`` and the resolution as set).

        A tight box says more than "the object is in here": the object touches its four
        sides. Cut inside the box itself, GrabCut alone does well on tight boxes but
        poorly on noisy ones, whose sides cut objects short or leave a margin: so it is a
        candidate to rank, not an answer (docs/training.md, "A box's own cut as a third
        answer").

        Arguments:
          image: HxWx3 uint8 RGB. box: (4,) XYXY box in pixels.

        Returns:
          (seed, cut): HxW bool, the filled box (clipped to the image) and its cut.
        """
        seed = box_fill(box, image.shape[:2])
        return seed, replace(self, box_margin=0.0, box_grow=0)(image, seed, box=box)
