"""Images: upload, list, read, the file itself, its embedding, and server-side decoding."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from segany.server import store
from segany.server.config import ServerConfig
from segany.server.exchange import add_image
from segany.server.inference import ModelService
from segany.server.routes.deps import CurrentUser, config_of, database, model_service
from segany.server.schemas import DecodeIn, DecodeOut, ImageOut
from segany.server.tables import Image
from segany.server.uploads import check_file_name, check_image

router = APIRouter(prefix="/api", tags=["images"])
Config = Annotated[ServerConfig, Depends(config_of)]
Service = Annotated[ModelService, Depends(model_service)]


@router.post("/projects/{project_id}/images", response_model=ImageOut, status_code=201)
def upload(
    project_id: int,
    request: Request,
    response: Response,
    user: CurrentUser,
    config: Config,
    file: Annotated[UploadFile, File(description="PNG, JPEG, WebP, BMP or TIFF")],
) -> Any:
    """Add an image to a project. Refused uploads (not an image: 415; over the byte or pixel
    limit: 413; a path as file name: 400) leave no row and no file behind. The same image
    uploaded again answers 200 with the existing row."""
    name = check_file_name(file.filename or "")
    with database(request).read() as session:
        store.get_project(session, user, project_id)  # 404 before reading the body
    checked = check_image(file.file.read(), max_pixels=config.max_image_pixels)
    row, created = add_image(database(request), config, project_id, name, checked)
    if not created:
        response.status_code = 200
    return row


@router.get("/projects/{project_id}/images", response_model=list[ImageOut])
def list_images(project_id: int, request: Request, user: CurrentUser) -> Any:
    with database(request).read() as session:
        return store.list_images(session, store.get_project(session, user, project_id))


@router.get("/images/{image_id}", response_model=ImageOut)
def get_image(image_id: int, request: Request, user: CurrentUser) -> Any:
    with database(request).read() as session:
        return store.get_image(session, user, image_id)


@router.get("/images/{image_id}/file", response_class=FileResponse)
def image_file(image_id: int, request: Request, user: CurrentUser, config: Config) -> Any:
    with database(request).read() as session:
        image = store.get_image(session, user, image_id)
    return FileResponse(config.images_dir / image.stored_as, filename=image.file_name)


async def _image_and_next(
    request: Request, user: Any, image_id: int, config: ServerConfig, service: ModelService
) -> Image:
    """The image (404 if not the caller's), after queueing its project's next images."""

    def look_up() -> tuple[Image, list[Image]]:
        with database(request).read() as session:
            image = store.get_image(session, user, image_id)
            return image, store.next_images(session, image, config.prefetch)

    image, upcoming = await run_in_threadpool(look_up)
    service.prefetch([(i.sha256, config.images_dir / i.stored_as) for i in upcoming])
    return image


@router.get(
    "/images/{image_id}/embedding",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"application/octet-stream": {}},
            "description": "float32 little-endian, shape in X-Segany-Embedding",
        }
    },
)
async def embedding(
    image_id: int, request: Request, user: CurrentUser, config: Config, service: Service
) -> Any:
    """The image's embedding for a browser decoder: raw float32 (C order, little-endian);
    its shape, sizes and model in the ``X-Segany-Embedding`` header (JSON). Computed once
    per image and model, then served from the cache."""
    image = await _image_and_next(request, user, image_id, config, service)
    meta = await service.embedding(image.sha256, config.images_dir / image.stored_as)
    return FileResponse(
        service.cache.tensor_path(image.sha256),
        media_type="application/octet-stream",
        headers={
            "X-Segany-Embedding": json.dumps(meta),
            "Access-Control-Expose-Headers": "X-Segany-Embedding",
        },
    )


@router.post("/images/{image_id}/decode", response_model=DecodeOut)
async def decode(
    image_id: int,
    body: DecodeIn,
    request: Request,
    user: CurrentUser,
    config: Config,
    service: Service,
) -> Any:
    """Masks for points (with labels) and/or a box, decoded on the server: for clients
    without a browser decoder. Masks come as COCO RLE, best first by ``best``."""
    image = await _image_and_next(request, user, image_id, config, service)
    return await service.decode(
        image.sha256,
        config.images_dir / image.stored_as,
        body.points,
        body.labels,
        body.box,
        body.multimask,
    )
