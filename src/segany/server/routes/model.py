"""The served model: its description and its decoder as ONNX for the browser."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from segany.server.inference import ModelService
from segany.server.routes.deps import CurrentUser, model_service

router = APIRouter(prefix="/api/model", tags=["model"])
Service = Annotated[ModelService, Depends(model_service)]


@router.get("")
def describe(user: CurrentUser, service: Service) -> dict[str, Any]:
    """Name, weights sha256, input size, embedding shape and mask threshold."""
    return {**service.describe(), "decoder": "/api/model/decoder.onnx"}


@router.get("/decoder.onnx", response_class=FileResponse)
async def decoder(user: CurrentUser, service: Service) -> Any:
    """The model's prompt encoder and mask decoder as ONNX (opset 17), exported once; its
    inputs are those of segany's exporter (segany.engine.onnx_export)."""
    path = await service.decoder_onnx()
    return FileResponse(path, media_type="application/octet-stream", filename="decoder.onnx")
