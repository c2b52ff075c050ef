"""Moving data in and out of a project: image files in, exports out, COCO files in.

Exports write the project's accepted annotations (not proposals, rejected or deleted ones)
through :mod:`segany.data.export`; a COCO import adds annotations to the project's images of the
same file names, each with an idempotency key derived from its content, so importing the
same file twice adds nothing the second time.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segany.data.dataset import Dataset, DatasetAnnotation, DatasetImage
from segany.data.export import write_dataset
from segany.errors import InputError
from segany.server import editing, store
from segany.server.config import ServerConfig
from segany.server.database import Database
from segany.server.editing import AnnotationInput
from segany.server.tables import Image, Project, User
from segany.server.uploads import CheckedImage, store_image

__all__ = ["add_image", "import_dataset", "project_dataset", "write_export"]

PROVENANCE = ("stage", "prompts", "model_name", "weights_sha256")


def add_image(
    db: Database, config: ServerConfig, project_id: int, name: str, checked: CheckedImage
) -> tuple[Image, bool]:
    """Store a checked image's file, then its row; returns the row and whether it is new.

    The same image already in the project gives its row back. When the row cannot be
    written, the file is removed again unless another row uses it.
    """
    stored = store_image(config.images_dir, checked)
    try:
        with db.session() as session:
            row = store.find_image(session, project_id, checked.sha256)
            if row is not None:
                return row, False
            row = Image(
                project_id=project_id,
                file_name=name,
                sha256=checked.sha256,
                stored_as=stored,
                width=checked.width,
                height=checked.height,
                size_bytes=len(checked.data),
            )
            session.add(row)
            session.flush()
            return row, True
    except IntegrityError:  # the same image, committed concurrently
        with db.read() as session:
            found = store.find_image(session, project_id, checked.sha256)
        if found is None:
            raise
        return found, False
    except BaseException:
        with db.read() as session:
            if not store.file_in_use(session, checked.sha256):
                (config.images_dir / stored).unlink(missing_ok=True)
        raise


def project_dataset(session: Session, project: Project) -> tuple[Dataset, dict[int, str]]:
    """The project's images, accepted annotations and label set; and each image's stored
    file (relative to the data dir's ``images/``) by image id."""
    rows = store.list_images(session, project)
    images = tuple(
        DatasetImage(id=i.id, file_name=i.file_name, width=i.width, height=i.height) for i in rows
    )
    items = tuple(
        DatasetAnnotation(
            id=a.id,
            image_id=a.image_id,
            category_id=a.category_id,
            rle=a.rle,
            bbox=(a.bbox[0], a.bbox[1], a.bbox[2], a.bbox[3]),
            area=a.area,
            predicted_iou=a.predicted_iou,
            stability_score=a.stability_score,
            extra={k: getattr(a, k) for k in PROVENANCE if getattr(a, k) is not None},
        )
        for a in editing.list_annotations(session, project, status="accepted")
    )
    dataset = Dataset(images=images, annotations=items, categories=tuple(project.categories))
    return dataset, {i.id: i.stored_as for i in rows}


def write_export(
    dataset: Dataset,
    files: dict[int, str],
    fmt: str,
    out: Path,
    config: ServerConfig,
    segmentation: str = "rle",
) -> Path:
    """Write an export; SA-1B and YOLO folders get copies of the images."""

    def image_path(image: DatasetImage) -> Path:
        return config.images_dir / files[image.id]

    return write_dataset(
        dataset,
        fmt,
        out,
        segmentation=segmentation,  # type: ignore[arg-type]
        image_path=image_path,
    )


def import_dataset(
    session: Session, user: User, project: Project, dataset: Dataset
) -> dict[str, int]:
    """Add ``dataset``'s annotations to the project's images with the same file names.

    Raises:
        InputError: an annotation's category is not in the project's label set, or no
            image of the file matches one of the project's.
    """
    known = store.category_ids(project)
    unknown = {a.category_id for a in dataset.annotations} - known
    if unknown:
        raise InputError(
            f"categories {sorted(unknown)} are not in project {project.id}'s label set"
        )
    by_name = {Path(i.file_name).name: i for i in store.list_images(session, project)}
    targets: dict[int, Image] = {}
    for image in dataset.images:
        match = by_name.get(Path(image.file_name).name)
        if match is not None:
            targets[image.id] = match
    if dataset.images and not targets:
        raise InputError(
            f"none of the file's {len(dataset.images)} images is in project "
            f"{project.id} (images are matched by file name)"
        )
    created = skipped = 0
    for item in dataset.annotations:
        target = targets.get(item.image_id)
        if target is None:
            skipped += 1
            continue
        extra = dict(item.extra)
        data = AnnotationInput(
            image_id=target.id,
            category_id=item.category_id,
            rle=item.rle,
            stage=extra.get("stage", "manual"),
            prompts=extra.get("prompts"),
            model_name=extra.get("model_name"),
            weights_sha256=extra.get("weights_sha256"),
            predicted_iou=item.predicted_iou,
            stability_score=item.stability_score,
        )
        _, new = editing.create_annotation(session, user, project, data, _key(target, item))
        created += new
    return {
        "images": len(targets),
        "annotations": created,
        "unchanged": len(dataset.annotations) - created - skipped,
        "skipped": skipped,
    }


def _key(image: Image, item: DatasetAnnotation) -> str:
    content = json.dumps([image.sha256, item.category_id, item.rle["counts"]])
    return "import:" + hashlib.sha256(content.encode()).hexdigest()[:48]
