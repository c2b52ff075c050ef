"""Annotations: create (idempotent), list, read, edit and delete (409 on a stale version),
accept or reject a proposal, and each one's history."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query, Request, Response

from segany.server import editing, store
from segany.server.editing import AnnotationInput
from segany.server.routes.deps import CurrentUser, database
from segany.server.schemas import (
    AnnotationChange,
    AnnotationIn,
    AnnotationOut,
    EventOut,
    RejectIn,
    ReviewIn,
)

router = APIRouter(prefix="/api/projects/{project_id}/annotations", tags=["annotations"])


@router.post("", response_model=AnnotationOut, status_code=201)
def create(
    project_id: int,
    body: AnnotationIn,
    request: Request,
    response: Response,
    user: CurrentUser,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> Any:
    """Create an annotation. Send an ``Idempotency-Key`` header to make retries safe: a
    second request with the same key answers 200 with the annotation the first made."""
    data = AnnotationInput(
        rle=body.segmentation.model_dump(),
        **body.model_dump(exclude={"segmentation"}),
    )
    with database(request).session() as session:
        project = store.get_project(session, user, project_id)
        row, created = editing.create_annotation(session, user, project, data, idempotency_key)
    if not created:
        response.status_code = 200
    return row


@router.get("", response_model=list[AnnotationOut])
def list_annotations(
    project_id: int,
    request: Request,
    user: CurrentUser,
    image_id: Annotated[int | None, Query()] = None,
    deleted: bool = False,
    status: Literal["accepted", "proposed", "rejected", "all"] = "accepted",
) -> Any:
    """The project's (or an image's) annotations: the accepted ones unless ``status``
    says otherwise (``proposed``, ``rejected`` or ``all``)."""
    with database(request).read() as session:
        project = store.get_project(session, user, project_id)
        return editing.list_annotations(session, project, image_id, deleted=deleted, status=status)


@router.get("/{annotation_id}", response_model=AnnotationOut)
def get_annotation(project_id: int, annotation_id: int, request: Request, user: CurrentUser) -> Any:
    with database(request).read() as session:
        project = store.get_project(session, user, project_id)
        return editing.get_annotation(session, project, annotation_id)


@router.patch("/{annotation_id}", response_model=AnnotationOut)
def update(
    project_id: int,
    annotation_id: int,
    body: AnnotationChange,
    request: Request,
    user: CurrentUser,
) -> Any:
    """Change an annotation made at ``version``; 409 if it has changed since."""
    changes = body.model_dump(exclude={"version"}, exclude_unset=True)
    if "segmentation" in changes:
        changes["rle"] = changes.pop("segmentation")
    with database(request).session() as session:
        project = store.get_project(session, user, project_id)
        return editing.update_annotation(
            session, user, project, annotation_id, body.version, changes
        )


@router.delete("/{annotation_id}", response_model=AnnotationOut)
def delete(
    project_id: int, annotation_id: int, version: int, request: Request, user: CurrentUser
) -> Any:
    """Delete an annotation at ``version`` (it stays in the history; undo brings it back)."""
    with database(request).session() as session:
        project = store.get_project(session, user, project_id)
        return editing.delete_annotation(session, user, project, annotation_id, version)


@router.post("/{annotation_id}/accept", response_model=AnnotationOut)
def accept(
    project_id: int,
    annotation_id: int,
    request: Request,
    user: CurrentUser,
    body: Annotated[ReviewIn | None, Body()] = None,
) -> Any:
    """Accept a proposal, optionally with another ``category_id`` or the mask as edited
    (then marked ``prompts.edited``); 409 if it is not a proposal (any more). Undo puts it
    back to proposed."""
    review = body or ReviewIn()
    changes: dict[str, Any] = {"category_id": review.category_id}
    if review.segmentation is not None:
        changes["rle"] = review.segmentation.model_dump()
    with database(request).session() as session:
        project = store.get_project(session, user, project_id)
        return editing.review_annotation(
            session, user, project, annotation_id, "accept", review.version, changes
        )


@router.post("/{annotation_id}/reject", response_model=AnnotationOut)
def reject(
    project_id: int,
    annotation_id: int,
    request: Request,
    user: CurrentUser,
    body: Annotated[RejectIn | None, Body()] = None,
) -> Any:
    """Reject a proposal (it is kept, so that it is not proposed again); 409 if it is not
    a proposal (any more) or, with ``version``, if it changed since."""
    version = body.version if body is not None else None
    with database(request).session() as session:
        project = store.get_project(session, user, project_id)
        return editing.review_annotation(session, user, project, annotation_id, "reject", version)


@router.get("/{annotation_id}/history", response_model=list[EventOut])
def history(project_id: int, annotation_id: int, request: Request, user: CurrentUser) -> Any:
    with database(request).read() as session:
        project = store.get_project(session, user, project_id)
        return editing.history(session, project, annotation_id)
