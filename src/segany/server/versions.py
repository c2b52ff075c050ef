"""Model versions in the database: register, list, activate.

A version is a row of ``model_versions``: the registry's weights of an architecture
(``path`` None) or a weights file in the data dir (:mod:`segany.server.weights_store`),
labelled ``v1``, ``v2``, ... in the order registered. Exactly one version is active, the
one the server serves: :func:`activate` clears the others in the same transaction, having
locked every row first (so two activations at once end with one active, on PostgreSQL
too), and a partial unique index refuses a second active row whatever writes it.

These functions only touch rows; loading the weights and switching the served model is
:mod:`segany.server.switching`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from segany.server import store
from segany.server.errors import NotFoundError
from segany.server.tables import Annotation, ModelVersion, User

__all__ = [
    "VersionSource",
    "activate",
    "active_version",
    "get_version",
    "list_versions",
    "mask_counts",
    "register",
]


@dataclass(frozen=True)
class VersionSource:
    """What a new version is: architecture ``name``, weights ``weights_sha256`` (the
    registry's, or those of the file at ``path`` relative to the data dir), the version it
    was trained from and the project it was trained on, and the training's metrics."""

    name: str
    weights_sha256: str
    path: str | None = None
    parent_sha256: str | None = None
    project_id: int | None = None
    metrics: dict[str, Any] | None = None


def get_version(session: Session, version_id: int) -> ModelVersion:
    found = session.get(ModelVersion, version_id)
    if found is None:
        raise NotFoundError(f"no model version {version_id}")
    return found


def active_version(session: Session) -> ModelVersion | None:
    """The active version (None: none registered yet)."""
    return session.scalar(select(ModelVersion).where(ModelVersion.active.is_(True)))


def list_versions(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id)))


def mask_counts(session: Session, user: User | None) -> dict[str, int]:
    """Non-deleted annotations by the weights sha256 that made them, in the projects
    ``user`` can see (None: all projects)."""
    query = (
        select(Annotation.weights_sha256, func.count())
        .where(Annotation.deleted.is_(False), Annotation.weights_sha256.is_not(None))
        .group_by(Annotation.weights_sha256)
    )
    if user is not None:
        visible = [p.id for p in store.list_projects(session, user)]
        query = query.where(Annotation.project_id.in_(visible))
    return {str(sha): int(count) for sha, count in session.execute(query)}


def register(
    session: Session, source: VersionSource, *, active: bool = False
) -> tuple[ModelVersion, bool]:
    """The version of ``source.weights_sha256``, registered now with the next label unless
    it already is; and whether it is new. ``active`` makes it the active version (the
    first version registered is active whatever ``active`` says).

    The label is one past the highest so far; two registrations at once on PostgreSQL can
    pick the same one, and the second then fails on the unique label (an IntegrityError
    to retry), never makes two rows with one label.
    """
    found = session.scalar(
        select(ModelVersion).where(ModelVersion.weights_sha256 == source.weights_sha256)
    )
    if found is not None:
        if active and not found.active:
            activate(session, found.id)
        return found, False
    labels = session.scalars(select(ModelVersion.label)).all()
    number = 1 + max((int(label[1:]) for label in labels if label[1:].isdigit()), default=0)
    first = not labels
    row = ModelVersion(
        name=source.name,
        label=f"v{number}",
        weights_sha256=source.weights_sha256,
        path=source.path,
        parent_sha256=source.parent_sha256,
        project_id=source.project_id,
        metrics=source.metrics,
        active=False,
    )
    session.add(row)
    session.flush()
    if active or first:
        activate(session, row.id)
    return row, True


def activate(session: Session, version_id: int) -> ModelVersion:
    """Make version ``version_id`` the active one (and no other)."""
    rows = list(session.scalars(select(ModelVersion).with_for_update()))  # one at a time
    target = next((r for r in rows if r.id == version_id), None)
    if target is None:
        raise NotFoundError(f"no model version {version_id}")
    for row in rows:
        if row.active and row is not target:
            row.active = False
    session.flush()  # before the new one is set: the unique index checks every statement
    target.active = True
    session.flush()
    return target
