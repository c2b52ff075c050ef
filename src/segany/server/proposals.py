"""SegEvery's masks of an image, kept as annotations: the semi-automatic stage's proposals
and the automatic stage's masks.

Every mask of the generator (run with the project's settings, :mod:`.settings`) becomes an
annotation unless it overlaps one already on the image: a mask whose IoU with any
annotation there that is not deleted (accepted, proposed or rejected, so that a rejected
proposal is not offered again) or with one added just before it is ``>= overlap_iou`` is
skipped. Running the stage twice on an image therefore adds nothing the second time. The
image's row is locked while its masks are written, so two runs at once cannot both add the
same mask (on SQLite every write transaction is serialised anyway).

The masks are compared on their bounding boxes' crops only, so a large image with many
annotations costs the sum of their boxes' areas, not a full mask each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from segany.data.rle import rle_to_mask
from segany.server import editing
from segany.server.config import ServerConfig
from segany.server.database import Database
from segany.server.editing import AnnotationInput
from segany.server.errors import NotFoundError
from segany.server.settings import effective
from segany.server.tables import Annotation, Image, Project, User

__all__ = [
    "Footprint",
    "Model",
    "Stored",
    "generator_options",
    "image_path",
    "store_masks",
    "write_proposals",
]


@dataclass(frozen=True)
class Model:
    """The model that made the masks, as their provenance names it."""

    name: str
    weights_sha256: str


@dataclass
class Stored:
    """What :func:`store_masks` did: the annotations it made, the masks it skipped."""

    created: list[Annotation]
    skipped: int


def generator_options(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The :class:`~segany.everything.MaskGenerator` options of a project's settings."""
    values = effective(settings)
    return {
        "strategy": values["strategy"],
        "points_per_side": values["points_per_side"],
        "pred_iou_thresh": values["pred_iou_thresh"],
        "stability_score_thresh": values["stability_score_thresh"],
    }


def image_path(config: ServerConfig, image: Image) -> Path:
    return config.images_dir / image.stored_as


class Footprint:
    """A mask cut to its bounding box, for IoU with others (``box``: x0, y0, x1, y1 with
    exclusive ends)."""

    def __init__(self, rle: Mapping[str, Any]) -> None:
        mask = rle_to_mask(dict(rle))
        rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
        if not rows.any():
            self.box, self.crop, self.area = (0, 0, 0, 0), mask[:0, :0], 0
            return
        y0, y1 = int(np.argmax(rows)), len(rows) - int(np.argmax(rows[::-1]))
        x0, x1 = int(np.argmax(cols)), len(cols) - int(np.argmax(cols[::-1]))
        self.box = (x0, y0, x1, y1)
        self.crop = mask[y0:y1, x0:x1]
        self.area = int(self.crop.sum())

    def iou(self, other: Footprint) -> float:
        ax0, ay0, ax1, ay1 = self.box
        bx0, by0, bx1, by1 = other.box
        x0, y0, x1, y1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
        if x0 >= x1 or y0 >= y1:
            return 0.0
        mine = self.crop[y0 - ay0 : y1 - ay0, x0 - ax0 : x1 - ax0]
        theirs = other.crop[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]
        inter = int(np.count_nonzero(mine & theirs))
        union = self.area + other.area - inter
        return inter / union if union else 0.0


def store_masks(
    session: Session,
    user: User,
    project: Project,
    image: Image,
    records: Sequence[Mapping[str, Any]],
    *,
    stage: str,
    status: str,
    model: Model,
    overlap_iou: float,
) -> Stored:
    """Add SegEvery's ``records`` (COCO RLE, as ``MaskGenerator(output_mode="coco_rle")``
    gives them) to ``image`` as annotations of the project's first category, best
    predicted IoU first, skipping the ones that overlap (see the module's docstring)."""
    session.execute(select(Image.id).where(Image.id == image.id).with_for_update())
    there = editing.list_annotations(session, project, image.id, status="all")
    kept = [Footprint(a.rle) for a in there]
    category = int(project.categories[0]["id"])
    created: list[Annotation] = []
    skipped = 0
    ranked = sorted(records, key=lambda r: -float(r["predicted_iou"]))
    for record in ranked:
        footprint = Footprint(record["segmentation"])
        if footprint.area == 0 or any(footprint.iou(k) >= overlap_iou for k in kept):
            skipped += 1
            continue
        data = AnnotationInput(
            image_id=image.id,
            category_id=category,
            rle=record["segmentation"],
            stage=stage,
            prompts=_prompts(record),
            model_name=model.name,
            weights_sha256=model.weights_sha256,
            predicted_iou=float(record["predicted_iou"]),
            stability_score=float(record["stability_score"]),
            status=status,
        )
        annotation, _ = editing.create_annotation(session, user, project, data, undoable=False)
        created.append(annotation)
        kept.append(footprint)
    return Stored(created, skipped)


def _prompts(record: Mapping[str, Any]) -> dict[str, Any]:
    """The prompt SegEvery decoded the mask from: a grid point, or an object's box (XYXY)."""
    if "prompt_box" in record:
        x, y, w, h = (float(v) for v in record["prompt_box"])
        return {"generator": "objects", "box": [x, y, x + w, y + h]}
    return {"generator": "grid", "points": record["point_coords"], "labels": [1]}


def write_proposals(
    db: Database,
    user_id: int,
    project_id: int,
    image_id: int,
    records: Sequence[Mapping[str, Any]],
    model: Model,
) -> Stored:
    """Store ``records`` of an image as proposals (stage "semi", status "proposed") by
    ``user_id``, with the project's overlap setting, in one transaction."""
    with db.session() as session:
        project = session.get_one(Project, project_id)
        image = session.get(Image, image_id)
        if image is None or image.project_id != project_id:
            raise NotFoundError(f"no image {image_id} in project {project_id}")
        return store_masks(
            session,
            session.get_one(User, user_id),
            project,
            image,
            records,
            stage="semi",
            status="proposed",
            model=model,
            overlap_iou=float(effective(project.settings)["overlap_iou"]),
        )
