"""The automatic stage's jobs: queue one for a project, follow it, cancel it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from segany.server import jobs, store
from segany.server.routes.deps import CurrentUser, database
from segany.server.schemas import JobIn, JobOut

router = APIRouter(prefix="/api", tags=["jobs"])


@router.post("/projects/{project_id}/jobs", response_model=JobOut, status_code=201)
def create(project_id: int, request: Request, user: CurrentUser, body: JobIn | None = None) -> Any:
    """Queue an automatic job over every image of the project (409 if one is queued or
    running): SegEvery with the project's settings of now, each mask accepted as stage
    "auto" unless it overlaps an annotation already there."""
    with database(request).session() as session:
        project = store.get_project(session, user, project_id)
        job = jobs.create_job(session, user, project, (body or JobIn()).kind)
    runner: jobs.JobRunner | None = request.app.state.jobs
    if runner is not None:
        runner.wake()
    return job


@router.get("/projects/{project_id}/jobs", response_model=list[JobOut])
def list_jobs(project_id: int, request: Request, user: CurrentUser) -> Any:
    with database(request).read() as session:
        return jobs.list_jobs(session, store.get_project(session, user, project_id))


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: int, request: Request, user: CurrentUser) -> Any:
    """A job and its progress: ``done`` of ``total`` images, ``masks`` made."""
    with database(request).read() as session:
        return jobs.get_job(session, user, job_id)


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
def cancel(job_id: int, request: Request, user: CurrentUser) -> Any:
    """Cancel a queued or running job: a running one stops after its current image, whose
    masks are kept with the images done before. 409 if it has finished."""
    with database(request).session() as session:
        return jobs.cancel_job(session, user, job_id)
