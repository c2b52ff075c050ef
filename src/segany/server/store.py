"""Projects, their members and images: the rows, and who may see them.

A user sees the projects they own or were added to; for anyone else a project does not
exist (:class:`~segany.server.errors.NotFoundError`, answered 404 like a missing one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from segany.data.coco import COCO_CATEGORIES
from segany.errors import InputError
from segany.server.errors import NotFoundError
from segany.server.tables import Image, Member, Project, User

__all__ = [
    "add_member",
    "file_in_use",
    "find_image",
    "create_project",
    "get_image",
    "get_project",
    "list_images",
    "list_projects",
    "next_images",
]


def create_project(
    session: Session, owner: User, name: str, categories: Sequence[dict[str, Any]] | None = None
) -> Project:
    """A new project owned by ``owner``, labelled with ``categories`` (default: COCO's 80)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InputError("a project needs a name of 1 to 200 characters")
    labels = [dict(c) for c in (categories if categories is not None else COCO_CATEGORIES)]
    _check_categories(labels)
    project = Project(name=name, owner_id=owner.id, categories=labels)
    session.add(project)
    session.flush()
    return project


def _check_categories(categories: list[dict[str, Any]]) -> None:
    ids = [c.get("id") for c in categories]
    if not categories or not all(isinstance(i, int) and i > 0 for i in ids):
        raise InputError("categories need positive integer ids")
    if len(set(ids)) != len(ids):
        raise InputError("category ids must be unique")
    if not all(isinstance(c.get("name"), str) and c["name"] for c in categories):
        raise InputError("every category needs a name")


def _visible(user: User) -> Any:
    members = select(Member.project_id).where(Member.user_id == user.id)
    return or_(Project.owner_id == user.id, Project.id.in_(members))


def list_projects(session: Session, user: User) -> list[Project]:
    return list(session.scalars(select(Project).where(_visible(user)).order_by(Project.id)))


def get_project(session: Session, user: User | None, project_id: int) -> Project:
    """Project ``project_id`` if ``user`` may see it (None: no check, for the CLI)."""
    query = select(Project).where(Project.id == project_id)
    if user is not None:
        query = query.where(_visible(user))
    project = session.scalar(query)
    if project is None:
        raise NotFoundError(f"no project {project_id}")
    return project


def add_member(session: Session, project: Project, user: User) -> None:
    if user.id != project.owner_id and session.get(Member, (project.id, user.id)) is None:
        session.add(Member(project_id=project.id, user_id=user.id))
        session.flush()


def category_ids(project: Project) -> set[int]:
    return {int(c["id"]) for c in project.categories}


def list_images(session: Session, project: Project) -> list[Image]:
    return list(
        session.scalars(select(Image).where(Image.project_id == project.id).order_by(Image.id))
    )


def get_image(session: Session, user: User | None, image_id: int) -> Image:
    """Image ``image_id`` if ``user`` may see its project."""
    image = session.get(Image, image_id)
    if image is None:
        raise NotFoundError(f"no image {image_id}")
    try:
        get_project(session, user, image.project_id)
    except NotFoundError:
        raise NotFoundError(f"no image {image_id}") from None
    return image


def next_images(session: Session, image: Image, count: int) -> list[Image]:
    """The ``count`` images of the same project after ``image``: the ones to encode next."""
    query = (
        select(Image)
        .where(Image.project_id == image.project_id, Image.id > image.id)
        .order_by(Image.id)
        .limit(count)
    )
    return list(session.scalars(query))


def find_image(session: Session, project_id: int, sha256: str) -> Image | None:
    query = select(Image).where(Image.project_id == project_id, Image.sha256 == sha256)
    return session.scalar(query)


def file_in_use(session: Session, sha256: str) -> bool:
    """Whether any project holds the image file of this sha256."""
    return session.scalar(select(Image.id).where(Image.sha256 == sha256).limit(1)) is not None
