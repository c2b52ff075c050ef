"""mIoU of promptable segmentation on scenes with ground truth, by prompt type.

Prompt types (each object of each scene is one target):
  centre       one click at the object's most interior pixel; the mask picked by the
               model's predicted IoU (``centre_oracle``: the best of the 3 masks)
  random       one click at a uniformly random pixel of the object
  box          the tight box: its single mask, or with ``box_masks=3`` the predictor's
               pick of its 3 masks (the default when the predictor has a box ranker)
  noisy_box    the tight box, each side moved by N(0, 0.1 x side), at most 20 px (its
               masks as for ``box``)
  clicks_k     after the centre click, k corrective clicks, each at the most interior
               pixel of the larger error region (missed object: positive; wrongly
               included: negative), with the previous logits as mask input; the
               answer is the predictor's pick of its 3 masks (as for the centre
               click), or its single mask with ``click_masks=1``, merged into the
               previous mask around the click (a :class:`~segany.session.ClickSession`;
               ``merge=False``: the answer as it is)
  box_fill     baseline without a model: the filled tight box
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..data.masks import binary_iou as iou
from ..data.masks import box_fill, corrective_click, interior_point
from ..data.scenes import Scene
from ..session import ClickSession, Prompter

PROMPT_TYPES = ("centre", "centre_oracle", "random", "box", "noisy_box", "box_fill")
SIZE_BINS = (("small", 0, 32**2), ("medium", 32**2, 96**2), ("large", 96**2, float("inf")))


def noisy_box(box: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """The XYXY ``box`` with each side moved by N(0, 0.1 x side), at most 20 px, kept in
    an image of ``shape`` (H, W)."""
    sides = np.array([box[2] - box[0], box[3] - box[1]] * 2) + 1
    shifted = box + np.clip(rng.normal(0, 0.1, 4) * sides, -20, 20)
    x0, x1 = sorted((shifted[0], shifted[2]))
    y0, y1 = sorted((shifted[1], shifted[3]))
    height, width = shape
    return np.array([max(x0, 0), max(y0, 0), min(x1, width - 1), min(y1, height - 1)])


def prompt_boxes(scene: Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The Nx4 tight boxes of ``scene``'s instances and their noisy copies (:func:`noisy_box`,
    drawn from ``rng`` before anything else of the scene), as the evaluation prompts them."""
    boxes = scene.boxes.astype(np.float64)
    shape = scene.image.shape[:2]
    return boxes, np.stack([noisy_box(b, shape, rng) for b in boxes])


def box_masks_of(predictor: Prompter, box_masks: int | None = None) -> int:
    """The masks a box is answered with: ``box_masks`` (1 or 3), or when None the
    predictor's ``preferred_box_masks`` if it has one (a staged predictor whose box
    ranker picks among a box's snapped masks: 3), else 1 (SAM's choice: the decoder's own
    pick of 3 masks is worse than its single mask for a box)."""
    if box_masks is None:
        return int(getattr(predictor, "preferred_box_masks", 1))
    if box_masks not in (1, 3):
        raise ValueError(f"box_masks must be 1 or 3, got {box_masks}")
    return box_masks


def evaluate_scene(
    predictor: Prompter,
    scene: Scene,
    clicks: int,
    rng: np.random.Generator,
    click_masks: int = 3,
    box_masks: int | None = None,
    merge: bool = True,
) -> list[dict[str, float]]:
    """One row per object of ``scene``: its area and the IoU of every prompt type.

    ``click_masks`` (3 or 1): masks the predictor answers each corrective click with;
    ``box_masks`` (3, 1 or None: :func:`box_masks_of`) the same for each box; ``merge``:
    each corrective click's answer merged into the previous mask
    (:func:`~segany.session.progressive_merge`), or taken as it is.
    """
    if click_masks not in (1, 3):
        raise ValueError(f"click_masks must be 1 or 3, got {click_masks}")
    multimask = click_masks == 3
    multibox = box_masks_of(predictor, box_masks) == 3
    predictor.set_image(scene.image)
    shape = scene.image.shape[:2]
    boxes, noisy = prompt_boxes(scene, rng)
    by_box = predictor.predict(box=boxes, multimask=multibox)
    by_noisy = predictor.predict(box=noisy, multimask=multibox)
    rows = []
    for i, gt in enumerate(scene.masks):
        row: dict[str, float] = {"area": float(gt.sum()), "parent": float(scene.parent[i])}
        row["box"] = iou(by_box.masks[i, int(np.argmax(by_box.scores[i]))], gt)
        row["noisy_box"] = iou(by_noisy.masks[i, int(np.argmax(by_noisy.scores[i]))], gt)
        row["box_fill"] = iou(box_fill(boxes[i], shape), gt)
        ys, xs = np.nonzero(gt)
        pick = rng.integers(len(ys))
        rand = predictor.predict(points=[[xs[pick] + 0.5, ys[pick] + 0.5]], labels=[1])
        row["random"] = iou(rand.masks[int(np.argmax(rand.scores))], gt)

        session, centre_ious = centre_click(predictor, gt, merge, multimask)
        row |= centre_ious
        for k in range(1, clicks + 1):
            assert session.mask is not None
            click = corrective_click(gt, session.mask)
            if click is None:
                row[f"clicks_{k}"] = 1.0
                continue
            session.click(*click[0], positive=bool(click[1]))
            row[f"clicks_{k}"] = iou(session.mask, gt)
        rows.append(row)
    return rows


def centre_click(
    predictor: Prompter, gt: np.ndarray, merge: bool = True, multimask: bool = True
) -> tuple[ClickSession, dict[str, float]]:
    """One click at the most interior pixel of ``gt`` (an HxW bool mask, the image already
    set): the session it opens (its mask the best-scored of the 3 answered; ``merge`` and
    ``multimask`` for the corrective clicks that may follow) and the ``centre`` and
    ``centre_oracle`` IoUs."""
    centre = interior_point(gt)
    first = predictor.predict(points=[list(centre)], labels=[1])
    session = ClickSession(predictor, merge=merge, multimask=multimask)
    session.add(*centre, True, first)  # keeps the best-scored of the 3 masks
    assert session.mask is not None
    oracle = max(iou(m, gt) for m in first.masks)
    return session, {"centre": iou(session.mask, gt), "centre_oracle": oracle}


def evaluate_promptable(
    predictor: Prompter,
    scenes: Iterable[Scene],
    clicks: int = 3,
    seed: int = 0,
    click_masks: int = 3,
    box_masks: int | None = None,
    merge: bool = True,
) -> list[dict[str, float]]:
    """Rows (one per object, see :func:`evaluate_scene`) over all ``scenes``, each scene's
    random prompts drawn from :func:`scene_rng` (``seed`` and the scene's own)."""
    box_masks = box_masks_of(predictor, box_masks)  # refused before the first scene
    rows: list[dict[str, float]] = []
    for scene in scenes:
        rng = scene_rng(seed, scene)
        rows.extend(evaluate_scene(predictor, scene, clicks, rng, click_masks, box_masks, merge))
    return rows


def promptable_rows(
    predictor: Prompter, index: int, scene: Scene, **options: Any
) -> list[dict[str, float]]:
    """:func:`evaluate_promptable` of one scene (``options``: its keyword arguments), as
    :func:`~segany.eval.workers.map_scenes` calls its work (``index`` unused)."""
    return evaluate_promptable(predictor, [scene], **options)


def scene_rng(seed: int, scene: Scene) -> np.random.Generator:
    """The generator of ``scene``'s random prompts (the random click, the noisy box), from
    ``seed`` and the scene's own seed: a scene gets the same prompts whichever scenes come
    before it and whichever process evaluates it."""
    return np.random.default_rng([seed, scene.seed])


def summarize(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """mIoU of every prompt type, overall and per object-size bin, with object counts."""
    keys = [k for k in rows[0] if k not in ("area", "parent")] if rows else []
    groups: dict[str, list[dict[str, float]]] = {"all": rows}
    for name, low, high in SIZE_BINS:
        groups[name] = [r for r in rows if low <= r["area"] < high]
    table: dict[str, dict[str, float]] = {}
    for name, members in groups.items():
        entry = {"objects": float(len(members))}
        for key in keys:
            entry[key] = float(np.mean([r[key] for r in members])) if members else float("nan")
        table[name] = entry
    return table
