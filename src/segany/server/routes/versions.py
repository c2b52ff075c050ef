"""Model versions: list them, activate one (a rollback is activating an earlier one)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from segany.errors import CheckpointError
from segany.server import versions
from segany.server.errors import BusyError, ConflictError
from segany.server.inference import ModelService
from segany.server.routes.deps import CurrentUser, database, model_service
from segany.server.schemas import ModelVersionOut
from segany.server.switching import VersionFollower
from segany.server.tables import ModelVersion

router = APIRouter(prefix="/api/model/versions", tags=["model"])
Service = Annotated[ModelService, Depends(model_service)]


def _out(row: ModelVersion, masks: dict[str, int]) -> dict[str, Any]:
    values = {k: getattr(row, k) for k in ModelVersionOut.model_fields if k != "masks"}
    return {**values, "masks": masks.get(row.weights_sha256, 0)}


@router.get("", response_model=list[ModelVersionOut])
def list_versions(request: Request, user: CurrentUser) -> Any:
    """Every version, oldest first, with how many masks each made in the caller's projects."""
    with database(request).read() as session:
        rows = versions.list_versions(session)
        masks = versions.mask_counts(session, user)
    return [_out(row, masks) for row in rows]


@router.post("/{version_id}/activate", response_model=ModelVersionOut)
def activate(version_id: int, request: Request, user: CurrentUser, service: Service) -> Any:
    """Serve version ``version_id`` from now on: its weights are loaded and verified
    (sha256) first, and a version that cannot be loaded is not activated (409). Embeddings
    and the browser's decoder follow the version's weights."""
    follower: VersionFollower | None = request.app.state.versions
    if follower is None:
        raise BusyError("the server does not serve a model")
    try:
        row = follower.activate(version_id)
    except CheckpointError as exc:
        raise ConflictError(f"model version {version_id} cannot be served: {exc}") from None
    with database(request).read() as session:
        masks = versions.mask_counts(session, user)
    return _out(row, masks)
