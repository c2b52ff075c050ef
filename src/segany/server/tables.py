"""The server's database tables (SQLAlchemy 2 declarative ORM).

The schema itself is created and changed only by the Alembic migrations in
:mod:`segany.server.migrations`; a test checks that the two agree.

* ``users`` and their API ``tokens`` (stored as sha256 digests, never in clear);
* ``projects``, each with an owner, ``members`` and its label set (``categories``, COCO
  category dicts);
* ``images``: one row per image in a project, the file stored once under the data dir by
  its sha256;
* ``annotations``: a mask as COCO RLE with its bbox, area and label, and its provenance
  (stage, prompts, model, weights sha256, predicted IoU, stability score). ``version``
  counts edits, for optimistic locking; ``idempotency_key`` makes a retried create a no-op;
* ``annotation_events``: every change as a before/after snapshot, for history, undo and
  redo;
* ``jobs``: the automatic stage's background runs over a project's images, and
  ``job_images``: the images a job has finished, each written in the same transaction as
  that image's masks (so an image is done exactly once per job, whatever happens).

A project's ``settings`` (SegEvery's options for proposals and jobs) are None until
changed: :mod:`segany.server.settings` fills in the defaults. An annotation's ``status``
is ``accepted`` (what exports and the default listing show), ``proposed`` (a semi-automatic
proposal waiting for review) or ``rejected``.

``model_versions``: the weights the server can serve (v1 the model it first started with,
later ones fine-tuned from a project's annotations); exactly one is ``active``, the one
served (:mod:`segany.server.versions`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Annotation",
    "AnnotationEvent",
    "Base",
    "Image",
    "Job",
    "JobImage",
    "Member",
    "ModelVersion",
    "Project",
    "Token",
    "User",
    "utc_now",
]

# Constraint names fixed by convention, so migrations can refer to them on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Token(Base):
    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(32), default="cli")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    categories: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Member(Base):
    __tablename__ = "members"
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("project_id", "sha256", name="uq_images_project_sha256"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    file_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    stored_as: Mapped[str] = mapped_column(String(255))  # relative to the data dir's images/
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Annotation(Base):
    __tablename__ = "annotations"
    __table_args__ = (
        UniqueConstraint("project_id", "idempotency_key", name="uq_annotations_idempotency"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    category_id: Mapped[int] = mapped_column(Integer)
    rle: Mapped[dict[str, Any]] = mapped_column(JSON)
    bbox: Mapped[list[float]] = mapped_column(JSON)
    area: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(16))
    prompts: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    model_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    weights_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    predicted_iou: Mapped[float | None] = mapped_column(Float, nullable=True)
    stability_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="accepted", server_default="accepted")
    version: Mapped[int] = mapped_column(Integer, default=1)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class AnnotationEvent(Base):
    __tablename__ = "annotation_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    annotation_id: Mapped[int] = mapped_column(
        ForeignKey("annotations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))  # create | update | delete | undo | redo
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # done: can be undone; undone: can be redone; closed: neither (a newer change came)
    state: Mapped[str] = mapped_column(String(8), default="done")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Job(Base):
    """A background run of the automatic stage over a project's images."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # auto
    # queued | running | done | cancelled | failed
    state: Mapped[str] = mapped_column(String(16), index=True)
    total: Mapped[int] = mapped_column(Integer, default=0)  # images to do, as last counted
    done: Mapped[int] = mapped_column(Integer, default=0)  # images done (rows of job_images)
    masks: Mapped[int] = mapped_column(Integer, default=0)  # annotations the job made
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)  # the project's, when queued
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class JobImage(Base):
    """An image a job has finished, with the number of masks it added there."""

    __tablename__ = "job_images"
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    masks: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class ModelVersion(Base):
    """Weights the server can serve: the registry's (``path`` None) or a file in the data
    dir (``path`` relative to it), with where they came from. One row is ``active``: a
    partial unique index allows no second one."""

    __tablename__ = "model_versions"
    __table_args__ = (
        Index(
            "ix_model_versions_one_active",
            "active",
            unique=True,
            sqlite_where=text("active"),
            postgresql_where=text("active"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))  # the registered architecture
    label: Mapped[str] = mapped_column(String(16), unique=True)  # v1, v2, ...
    weights_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str | None] = mapped_column(String(255), nullable=True)
    parent_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="SET NULL"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
