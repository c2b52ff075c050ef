"""Projects: create, list, read, their settings, add members, undo and redo, export and
import."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask

from segany.server import editing, exchange, settings, store
from segany.server.auth import find_user
from segany.server.config import ServerConfig
from segany.server.routes.deps import CurrentUser, config_of, database
from segany.server.schemas import AnnotationOut, MemberIn, ProjectIn, ProjectOut

router = APIRouter(prefix="/api/projects", tags=["projects"])


@router.post("", response_model=ProjectOut, status_code=201)
def create_project(body: ProjectIn, request: Request, user: CurrentUser) -> Any:
    with database(request).session() as session:
        return store.create_project(session, user, body.name, body.categories)


@router.get("", response_model=list[ProjectOut])
def list_projects(request: Request, user: CurrentUser) -> Any:
    with database(request).read() as session:
        return store.list_projects(session, user)


@router.get("/{project_id}", response_model=ProjectOut)
def get_project(project_id: int, request: Request, user: CurrentUser) -> Any:
    with database(request).read() as session:
        return store.get_project(session, user, project_id)


@router.patch("/{project_id}/settings")
def change_settings(
    project_id: int,
    request: Request,
    user: CurrentUser,
    changes: Annotated[
        dict[str, Any],
        Body(
            description="some of strategy (grid | objects), points_per_side (1-128), "
            "pred_iou_thresh, stability_score_thresh (0-1), overlap_iou (above 0, to 1); "
            "null puts a setting's default back",
            examples=[{"points_per_side": 32, "pred_iou_thresh": 0.8}],
        ),
    ],
) -> dict[str, Any]:
    """Change some of the project's proposal settings; answers the settings now in force
    (422 for an unknown setting or a value out of its range)."""
    with database(request).session() as session:
        project = store.get_project(session, user, project_id)
        project.settings = settings.merged(project.settings, changes) or None
        session.flush()
        return settings.effective(project.settings)


@router.post("/{project_id}/members", status_code=204)
def add_member(project_id: int, body: MemberIn, request: Request, user: CurrentUser) -> None:
    """Give another user access to the project (any member may)."""
    with database(request).session() as session:
        project = store.get_project(session, user, project_id)
        store.add_member(session, project, find_user(session, body.user))


@router.post("/{project_id}/undo", response_model=AnnotationOut)
def undo(project_id: int, request: Request, user: CurrentUser) -> Any:
    """Undo the caller's latest change in the project (409 if someone edited it since)."""
    with database(request).session() as session:
        return editing.undo(session, user, store.get_project(session, user, project_id))


@router.post("/{project_id}/redo", response_model=AnnotationOut)
def redo(project_id: int, request: Request, user: CurrentUser) -> Any:
    """Redo the caller's latest undone change."""
    with database(request).session() as session:
        return editing.redo(session, user, store.get_project(session, user, project_id))


@router.get("/{project_id}/export")
def export(
    project_id: int,
    request: Request,
    user: CurrentUser,
    config: Annotated[ServerConfig, Depends(config_of)],
    format: Literal["coco", "sa1b", "yolo", "png"] = "coco",
    segmentation: Annotated[Literal["rle", "polygon"], Query()] = "rle",
) -> Any:
    """The project's annotations: COCO as JSON; SA-1B, YOLO and PNG as a zip."""
    with database(request).read() as session:
        project = store.get_project(session, user, project_id)
        dataset, files = exchange.project_dataset(session, project)
    if format == "coco":
        from segany.data.coco import coco_document

        return JSONResponse(coco_document(dataset, segmentation=segmentation))
    work = Path(tempfile.mkdtemp(prefix="segany-export-"))
    try:
        folder = exchange.write_export(dataset, files, format, work / format, config, segmentation)
        archive = shutil.make_archive(str(work / f"project_{project_id}_{format}"), "zip", folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return FileResponse(
        archive,
        media_type="application/zip",
        filename=f"project_{project_id}_{format}.zip",
        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True),
    )


@router.post("/{project_id}/import/coco")
def import_coco(
    project_id: int,
    request: Request,
    user: CurrentUser,
    document: Annotated[dict[str, Any], Body()],
) -> dict[str, int]:
    """Add a COCO file's annotations to the project's images of the same file names."""
    from segany.data.coco import read_coco

    dataset = read_coco(document)
    with database(request).session() as session:
        project = store.get_project(session, user, project_id)
        return exchange.import_dataset(session, user, project, dataset)
