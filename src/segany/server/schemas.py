"""The API's request and response bodies (pydantic), as ``/openapi.json`` documents them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from segany.server.settings import effective

__all__ = [
    "AnnotationChange",
    "AnnotationIn",
    "AnnotationOut",
    "DecodeIn",
    "DecodeOut",
    "EventOut",
    "ImageOut",
    "JobIn",
    "JobOut",
    "LoginIn",
    "ModelVersionOut",
    "ProjectIn",
    "ProjectOut",
    "ProposalsOut",
    "RejectIn",
    "ReviewIn",
    "TokenOut",
]

Stage = Literal["manual", "semi", "auto"]
Status = Literal["accepted", "proposed", "rejected"]


class Rle(BaseModel):
    """A COCO RLE: ``size`` [height, width], ``counts`` compressed (str) or a list of runs."""

    size: list[int] = Field(min_length=2, max_length=2)
    counts: str | list[int]


class LoginIn(BaseModel):
    name: str
    password: str


class TokenOut(BaseModel):
    token: str
    user: str
    expires_at: datetime | None


class ProjectIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    categories: list[dict[str, Any]] | None = Field(
        default=None, description="label set (COCO category dicts); default: COCO's 80"
    )


class ProjectOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    owner_id: int
    categories: list[dict[str, Any]]
    settings: dict[str, Any] = Field(description="SegEvery's settings for proposals and jobs")
    created_at: datetime

    @field_validator("settings", mode="before")
    @classmethod
    def _effective(cls, stored: Any) -> dict[str, Any]:
        return effective(stored)


class MemberIn(BaseModel):
    user: str


class ImageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    project_id: int
    file_name: str
    sha256: str
    width: int
    height: int
    size_bytes: int


class Provenance(BaseModel):
    stage: Stage = "manual"
    prompts: dict[str, Any] | None = Field(default=None, description="points, labels, box")
    model_name: str | None = None
    weights_sha256: str | None = None
    predicted_iou: float | None = None
    stability_score: float | None = None


class AnnotationIn(Provenance):
    image_id: int
    category_id: int
    segmentation: Rle


class AnnotationChange(BaseModel):
    version: int = Field(description="the version the change was made on (409 if stale)")
    category_id: int | None = None
    segmentation: Rle | None = None
    stage: Stage | None = None
    prompts: dict[str, Any] | None = None
    model_name: str | None = None
    weights_sha256: str | None = None
    predicted_iou: float | None = None
    stability_score: float | None = None


class AnnotationOut(Provenance):
    model_config = ConfigDict(from_attributes=True)
    id: int
    project_id: int
    image_id: int
    category_id: int
    segmentation: dict[str, Any] = Field(validation_alias="rle")
    bbox: list[float]
    area: int
    version: int
    deleted: bool
    status: Status
    idempotency_key: str | None
    created_by: int
    created_at: datetime
    updated_at: datetime


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    annotation_id: int
    user_id: int
    action: str
    state: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: datetime


class DecodeIn(BaseModel):
    points: list[list[float]] | None = Field(default=None, description="Nx2 (x, y) pixels")
    labels: list[int] | None = Field(default=None, description="N: 1 object, 0 background")
    box: list[float] | None = Field(default=None, description="XYXY pixels")
    multimask: bool = True


class DecodeOut(BaseModel):
    masks: list[dict[str, Any]]
    scores: list[float]
    stability_scores: list[float]
    best: int
    model: str
    weights_sha256: str


class ReviewIn(BaseModel):
    """Accepting a proposal: optionally another label, or the mask as the annotator edited
    it; ``version`` makes it fail with 409 if the proposal changed since it was read."""

    category_id: int | None = None
    segmentation: Rle | None = None
    version: int | None = None


class RejectIn(BaseModel):
    version: int | None = Field(default=None, description="409 if the proposal changed since")


class ProposalsOut(BaseModel):
    created: int
    skipped: int = Field(description="masks that overlap an annotation already there")
    proposals: list[AnnotationOut]


class JobIn(BaseModel):
    kind: Literal["auto"] = "auto"


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    project_id: int
    kind: str
    state: Literal["queued", "running", "done", "cancelled", "failed"]
    total: int = Field(description="images to do in all, as last counted")
    done: int = Field(description="images done")
    masks: int = Field(description="annotations made")
    error: str | None
    settings: dict[str, Any]
    created_by: int
    created_at: datetime
    updated_at: datetime
    heartbeat_at: datetime | None


class ModelVersionOut(BaseModel):
    """A model version the server can serve (one is active: the one served)."""

    id: int
    label: str = Field(description="v1, v2, ... in the order registered")
    name: str = Field(description="the registered architecture")
    weights_sha256: str
    parent_sha256: str | None = Field(description="the version it was trained from")
    project_id: int | None = Field(description="the project it was trained on")
    active: bool
    created_at: datetime
    metrics: dict[str, Any] | None = Field(description="its training's (steps, loss, ...)")
    masks: int = Field(description="non-deleted annotations it made, in the caller's projects")
