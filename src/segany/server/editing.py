"""Annotations and their history: create (idempotent), edit (optimistic locking), delete,
accept or reject a proposal, undo and redo.

Every change is written as an :class:`~segany.server.tables.AnnotationEvent` holding the
annotation's state before and after, in the same transaction as the change, so the history
is complete whatever happens. Undo and redo work per user and project, like an editor's:
undo puts back the state before the caller's latest change; redo puts back the state after
the latest undone one; a new change clears what could be redone. An undo or redo that would
overwrite someone else's later edit is refused (:class:`~segany.server.errors.ConflictError`).
Masks the machine made (proposals, automatic masks) are recorded as created but not as the
caller's change to undo: accepting or rejecting a proposal is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segany.data.rle import mask_to_rle, rle_box_area, rle_to_mask
from segany.errors import InputError
from segany.server.errors import ConflictError, NotFoundError
from segany.server.store import category_ids
from segany.server.tables import Annotation, AnnotationEvent, Image, Project, User, utc_now

__all__ = [
    "STAGES",
    "STATUSES",
    "AnnotationInput",
    "create_annotation",
    "delete_annotation",
    "history",
    "list_annotations",
    "redo",
    "review_annotation",
    "snapshot",
    "undo",
    "update_annotation",
]

STAGES = ("manual", "semi", "auto")
#: accepted: a mask of the dataset; proposed: waiting for review; rejected: turned down
STATUSES = ("accepted", "proposed", "rejected")
#: The fields an event's snapshot holds (with ``version``).
FIELDS = (
    "category_id",
    "rle",
    "bbox",
    "area",
    "stage",
    "prompts",
    "model_name",
    "weights_sha256",
    "predicted_iou",
    "stability_score",
    "deleted",
    "status",
)
#: The fields a client may set: bbox and area follow from the mask, deletion and review
#: have their calls.
EDITABLE = tuple(name for name in FIELDS if name not in ("bbox", "area", "deleted", "status"))


@dataclass(frozen=True)
class AnnotationInput:
    """What a client sends: a mask as COCO RLE of the image's size, its label, provenance."""

    image_id: int
    category_id: int
    rle: Mapping[str, Any]
    stage: str = "manual"
    prompts: Mapping[str, Any] | None = None
    model_name: str | None = None
    weights_sha256: str | None = None
    predicted_iou: float | None = None
    stability_score: float | None = None
    status: str = "accepted"


def snapshot(annotation: Annotation) -> dict[str, Any]:
    state = {name: getattr(annotation, name) for name in FIELDS}
    state["version"] = annotation.version
    return state


def mask_fields(rle: Mapping[str, Any], image: Image) -> dict[str, Any]:
    """The stored form of a mask: compressed RLE, bbox (XYWH) and area, checked against the
    image's size."""
    try:
        box, area = rle_box_area(dict(rle))
        size = [int(v) for v in rle["size"]]
    except (InputError, ValueError, TypeError, KeyError) as exc:
        raise InputError(f"the mask is not a valid COCO RLE: {exc}") from None
    if size != [image.height, image.width]:
        raise InputError(
            f"the mask is {size[1]}x{size[0]} but image {image.id} is {image.width}x{image.height}"
        )
    if area == 0:
        raise InputError("the mask is empty")
    # compressed counts are kept as sent; a list of runs is stored compressed
    counts = rle["counts"]
    if not isinstance(counts, str):
        counts = mask_to_rle(rle_to_mask(dict(rle)))["counts"]
    return {"rle": {"size": size, "counts": counts}, "bbox": list(box), "area": area}


def _check(fields: Mapping[str, Any], project: Project) -> None:
    if "stage" in fields and fields["stage"] not in STAGES:
        raise InputError(f"stage must be one of {', '.join(STAGES)}, got {fields['stage']!r}")
    if "status" in fields and fields["status"] not in STATUSES:
        raise InputError(f"status must be one of {', '.join(STATUSES)}")
    if "category_id" in fields and fields["category_id"] not in category_ids(project):
        raise InputError(
            f"category {fields['category_id']} is not in project {project.id}'s label set"
        )
    for name in ("predicted_iou", "stability_score"):
        value = fields.get(name)
        if value is not None and not math.isfinite(value):
            raise InputError(f"{name} must be a finite number")


def create_annotation(
    session: Session,
    user: User,
    project: Project,
    data: AnnotationInput,
    idempotency_key: str | None = None,
    *,
    undoable: bool = True,
) -> tuple[Annotation, bool]:
    """Create an annotation; returns it and whether it is new.

    With ``idempotency_key``, a second request with the same key in the same project
    returns the annotation the first one made (``False``) instead of a duplicate.
    ``undoable`` False: the creation is in the history but not in ``user``'s undo (masks
    the machine made).
    """
    if idempotency_key is not None:
        found = _by_key(session, project, idempotency_key)
        if found is not None:
            return found, False
    image = session.get(Image, data.image_id)
    if image is None or image.project_id != project.id:
        raise NotFoundError(f"no image {data.image_id} in project {project.id}")
    fields = {k: getattr(data, k) for k in (*EDITABLE, "status") if k != "rle"}
    _check(fields, project)
    annotation = Annotation(
        project_id=project.id,
        image_id=image.id,
        created_by=user.id,
        idempotency_key=idempotency_key,
        deleted=False,
        version=1,
        **fields,
        **mask_fields(data.rle, image),
    )
    try:
        with session.begin_nested():
            session.add(annotation)
            session.flush()
    except IntegrityError:
        # the same key committed by a concurrent request in the meantime
        found = _by_key(session, project, idempotency_key) if idempotency_key else None
        if found is None:
            raise
        return found, False
    _record(session, user, annotation, "create", None, "done" if undoable else "closed")
    return annotation, True


def _by_key(session: Session, project: Project, key: str) -> Annotation | None:
    query = select(Annotation).where(
        Annotation.project_id == project.id, Annotation.idempotency_key == key
    )
    return session.scalar(query)


def get_annotation(session: Session, project: Project, annotation_id: int) -> Annotation:
    annotation = session.get(Annotation, annotation_id)
    if annotation is None or annotation.project_id != project.id:
        raise NotFoundError(f"no annotation {annotation_id} in project {project.id}")
    return annotation


def _live(session: Session, project: Project, annotation_id: int) -> Annotation:
    annotation = get_annotation(session, project, annotation_id)
    if annotation.deleted:
        raise NotFoundError(f"annotation {annotation_id} was deleted")
    return annotation


def update_annotation(
    session: Session,
    user: User,
    project: Project,
    annotation_id: int,
    version: int,
    changes: Mapping[str, Any],
) -> Annotation:
    """Apply ``changes`` (some of :data:`EDITABLE`) if the annotation is still at
    ``version``; else :class:`ConflictError` (someone else's edit came first)."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InputError(f"cannot change {', '.join(sorted(unknown))}")
    annotation = _live(session, project, annotation_id)
    _check(changes, project)
    values = {k: v for k, v in changes.items() if k != "rle"}
    if "rle" in changes:
        values.update(mask_fields(changes["rle"], session.get_one(Image, annotation.image_id)))
    return _write(session, user, annotation, version, values, "update")


def delete_annotation(
    session: Session, user: User, project: Project, annotation_id: int, version: int
) -> Annotation:
    """Mark an annotation deleted (kept, so that it can be undone)."""
    annotation = _live(session, project, annotation_id)
    return _write(session, user, annotation, version, {"deleted": True}, "delete")


def _write(
    session: Session,
    user: User,
    annotation: Annotation,
    version: int,
    values: Mapping[str, Any],
    action: str,
    before: dict[str, Any] | None = None,
    state: str = "done",
) -> Annotation:
    """Compare-and-set: change the row only if it is still at ``version``."""
    previous = snapshot(annotation)
    result = session.execute(
        update(Annotation)
        .where(Annotation.id == annotation.id, Annotation.version == version)
        .values(**values, version=version + 1, updated_at=utc_now())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.expire(annotation)
        raise ConflictError(
            f"annotation {annotation.id} is at version {annotation.version}, not {version}: "
            "it was changed by someone else; reload it and try again"
        )
    session.refresh(annotation)
    _record(session, user, annotation, action, before if before is not None else previous, state)
    return annotation


def _record(
    session: Session,
    user: User,
    annotation: Annotation,
    action: str,
    before: dict[str, Any] | None,
    state: str = "done",
) -> None:
    if state == "done":  # a new change: what was undone can no longer be redone
        session.execute(
            update(AnnotationEvent)
            .where(
                AnnotationEvent.project_id == annotation.project_id,
                AnnotationEvent.user_id == user.id,
                AnnotationEvent.state == "undone",
            )
            .values(state="closed")
            .execution_options(synchronize_session=False)
        )
    session.add(
        AnnotationEvent(
            project_id=annotation.project_id,
            annotation_id=annotation.id,
            user_id=user.id,
            action=action,
            before=before,
            after=snapshot(annotation),
            state=state,
        )
    )
    session.flush()


def undo(session: Session, user: User, project: Project) -> Annotation:
    """Put back the state before the caller's latest change in ``project``."""
    event = _latest(session, user, project, "done")
    if event is None:
        raise NotFoundError("nothing to undo")
    return _replay(session, user, event, "undo", event.before, "undone")


def redo(session: Session, user: User, project: Project) -> Annotation:
    """Put back the state after the caller's latest undone change in ``project``."""
    event = _latest(session, user, project, "undone")
    if event is None:
        raise NotFoundError("nothing to redo")
    return _replay(session, user, event, "redo", event.after, "done")


def _latest(session: Session, user: User, project: Project, state: str) -> AnnotationEvent | None:
    query = (
        select(AnnotationEvent)
        .where(
            AnnotationEvent.project_id == project.id,
            AnnotationEvent.user_id == user.id,
            AnnotationEvent.state == state,
        )
        .order_by(AnnotationEvent.id.desc())
        .limit(1)
    )
    return session.scalar(query)


def _replay(
    session: Session,
    user: User,
    event: AnnotationEvent,
    action: str,
    target: dict[str, Any] | None,
    new_state: str,
) -> Annotation:
    annotation = session.get_one(Annotation, event.annotation_id)
    last = session.scalar(
        select(AnnotationEvent)
        .where(AnnotationEvent.annotation_id == annotation.id)
        .order_by(AnnotationEvent.id.desc())
        .limit(1)
    )
    stands_for = last is not None and (
        last.id == event.id or (last.before or {}).get("event") == event.id
    )
    if not stands_for:
        raise ConflictError(
            f"annotation {annotation.id} was changed after that; {action} would "
            "overwrite the newer edit"
        )
    values = {k: v for k, v in (target or {}).items() if k in FIELDS}
    if target is None:  # undoing a create
        values = {"deleted": True}
    before = {"event": event.id}
    _write(session, user, annotation, annotation.version, values, action, before, "closed")
    event.state = new_state
    session.flush()
    return annotation


def review_annotation(
    session: Session,
    user: User,
    project: Project,
    annotation_id: int,
    decision: str,
    version: int | None = None,
    changes: Mapping[str, Any] | None = None,
) -> Annotation:
    """Accept (``decision`` "accept", with optional ``category_id`` and an edited ``rle``)
    or reject ("reject") a proposal: a change of the caller's, to undo like any other.

    An edited mask is marked ``prompts.edited`` and loses the model's scores (they were
    about the mask it proposed). Raises :class:`ConflictError` when the annotation is not a
    proposal (any more) or not at ``version``.
    """
    if decision not in ("accept", "reject"):
        raise ValueError(f"a review accepts or rejects, not {decision!r}")
    annotation = _live(session, project, annotation_id)
    if annotation.status != "proposed":
        raise ConflictError(f"annotation {annotation_id} is {annotation.status}, not proposed")
    changes = {k: v for k, v in (changes or {}).items() if v is not None}
    _check(changes, project)
    values: dict[str, Any] = {"status": "accepted" if decision == "accept" else "rejected"}
    if decision == "accept" and "category_id" in changes:
        values["category_id"] = changes["category_id"]
    if decision == "accept" and "rle" in changes:
        image = session.get_one(Image, annotation.image_id)
        values.update(mask_fields(changes["rle"], image))
        values.update(prompts={**(annotation.prompts or {}), "edited": True})
        values.update(predicted_iou=None, stability_score=None)
    at = annotation.version if version is None else version
    return _write(session, user, annotation, at, values, decision)


def list_annotations(
    session: Session,
    project: Project,
    image_id: int | None = None,
    *,
    deleted: bool = False,
    status: str = "accepted",
) -> list[Annotation]:
    """The project's (or one image's) annotations of ``status`` ("all": any status)."""
    query = select(Annotation).where(Annotation.project_id == project.id)
    if image_id is not None:
        query = query.where(Annotation.image_id == image_id)
    if status != "all":
        query = query.where(Annotation.status == status)
    if not deleted:
        query = query.where(Annotation.deleted.is_(False))
    return list(session.scalars(query.order_by(Annotation.id)))


def history(session: Session, project: Project, annotation_id: int) -> list[AnnotationEvent]:
    get_annotation(session, project, annotation_id)
    query = (
        select(AnnotationEvent)
        .where(AnnotationEvent.annotation_id == annotation_id)
        .order_by(AnnotationEvent.id)
    )
    return list(session.scalars(query))
