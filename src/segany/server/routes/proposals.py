"""The semi-automatic stage: SegEvery's masks of an image, offered as proposals."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from segany.server import store
from segany.server.config import ServerConfig
from segany.server.errors import NotFoundError
from segany.server.inference import ModelService
from segany.server.proposals import Model, generator_options, image_path, write_proposals
from segany.server.routes.deps import CurrentUser, config_of, database, model_service
from segany.server.schemas import ProposalsOut
from segany.server.tables import Image, Project

router = APIRouter(prefix="/api/projects/{project_id}", tags=["proposals"])
Config = Annotated[ServerConfig, Depends(config_of)]
Service = Annotated[ModelService, Depends(model_service)]


@router.post("/images/{image_id}/proposals", response_model=ProposalsOut)
async def propose(
    project_id: int,
    image_id: int,
    request: Request,
    user: CurrentUser,
    config: Config,
    service: Service,
) -> Any:
    """Run SegEvery with the project's settings on the image and keep its masks as
    proposals (stage "semi", status "proposed", the project's first label), except those
    that overlap an annotation already there by ``overlap_iou`` or more: a second call
    proposes nothing new, and a rejected proposal is not proposed again."""

    def look_up() -> tuple[Project, Image]:
        with database(request).read() as session:
            project = store.get_project(session, user, project_id)
            image = session.get(Image, image_id)
            if image is None or image.project_id != project.id:
                raise NotFoundError(f"no image {image_id} in project {project_id}")
            return project, image

    project, image = await run_in_threadpool(look_up)
    path, options = image_path(config, image), generator_options(project.settings)
    found = await service.queue.run(lambda: service.segment_everything(image.sha256, path, options))
    model = Model(found.model_name, found.weights_sha256)
    stored = await run_in_threadpool(
        write_proposals, database(request), user.id, project.id, image.id, found.records, model
    )
    return {"created": len(stored.created), "skipped": stored.skipped, "proposals": stored.created}
