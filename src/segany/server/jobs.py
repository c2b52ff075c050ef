"""The automatic stage: jobs that run SegEvery over every image of a project.

A job is a row of ``jobs`` (queued, running, then done, cancelled or failed). It covers
every image of its project that is not yet in ``job_images`` for it; each image's masks
(stage "auto", status "accepted", skipping those that overlap annotations already there,
:mod:`.proposals`) are written in ONE transaction with that image's ``job_images`` row and
the job's counts. So whatever stops the process (``kill -9`` included), an image is either
done with all its masks or not done at all, and a resumed job neither loses nor repeats
one. The transaction locks the job's row first and checks the image is not done yet, so
even two processes running the same job (two servers on one PostgreSQL, or ``segany project
auto --run`` beside a server) add each image's masks once.

Design: the :class:`JobRunner` is one thread of the server, running one job at a time,
image by image. It does the database work itself and hands each image's SegEvery to the
model's queue as *background* work (as the prefetcher does): the model stays on its one
thread, and requests are always taken before the next image, so an interactive decode
waits at most for the one image in progress, never behind the whole job. Jobs left queued
or running (a server stopped or killed) are resumed when the server starts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from segany.errors import InputError
from segany.server import store
from segany.server.config import ServerConfig
from segany.server.database import Database
from segany.server.errors import ConflictError, NotFoundError
from segany.server.inference import ModelService, Segmented
from segany.server.proposals import Model, generator_options, image_path, store_masks
from segany.server.settings import effective
from segany.server.tables import Image, Job, JobImage, Project, User, utc_now

__all__ = [
    "ACTIVE",
    "KINDS",
    "JobRunner",
    "StoppedError",
    "cancel_job",
    "create_job",
    "get_job",
    "list_jobs",
]

KINDS = ("auto",)
ACTIVE = ("queued", "running")
log = logging.getLogger("segany.server.jobs")


class StoppedError(Exception):
    """The runner was asked to stop while an image was being segmented."""


def create_job(session: Session, user: User, project: Project, kind: str = "auto") -> Job:
    """Queue a job over the project's images, with the project's settings of now.

    Raises:
        ConflictError: the project already has a queued or running job.
    """
    if kind not in KINDS:
        raise InputError(f"no job of kind {kind!r}; the kinds are {', '.join(KINDS)}")
    session.execute(select(Project.id).where(Project.id == project.id).with_for_update())
    active = session.scalar(
        select(Job).where(Job.project_id == project.id, Job.state.in_(ACTIVE)).limit(1)
    )
    if active is not None:
        raise ConflictError(
            f"project {project.id} already has job {active.id} ({active.state}, "
            f"{active.done} of {active.total} images); cancel it or wait for it"
        )
    total = session.scalar(select(func.count()).where(Image.project_id == project.id)) or 0
    job = Job(
        project_id=project.id,
        kind=kind,
        state="queued",
        total=total,
        done=0,
        masks=0,
        settings=effective(project.settings),
        created_by=user.id,
    )
    session.add(job)
    session.flush()
    return job


def list_jobs(session: Session, project: Project) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.project_id == project.id).order_by(Job.id)))


def get_job(session: Session, user: User | None, job_id: int) -> Job:
    """Job ``job_id`` if ``user`` may see its project (None: no check)."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    try:
        store.get_project(session, user, job.project_id)
    except NotFoundError:
        raise NotFoundError(f"no job {job_id}") from None
    return job


def cancel_job(session: Session, user: User | None, job_id: int) -> Job:
    """Cancel a queued or running job (a running one stops after its current image).

    Raises:
        ConflictError: the job has already finished.
    """
    job = get_job(session, user, job_id)
    session.execute(
        update(Job)
        .where(Job.id == job.id, Job.state.in_(ACTIVE))
        .values(state="cancelled", updated_at=utc_now())
        .execution_options(synchronize_session=False)
    )
    session.refresh(job)
    if job.state != "cancelled":
        raise ConflictError(f"job {job_id} is {job.state}: there is nothing to cancel")
    return job


class JobRunner:
    """Runs the jobs of a database with a model service: in a thread of its own
    (:meth:`start`), or one job in the calling thread (:meth:`run`, for the CLI)."""

    def __init__(
        self, db: Database, config: ServerConfig, service: ModelService, poll_s: float = 2.0
    ) -> None:
        self.db, self.config, self.service, self.poll_s = db, config, service, poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------- the thread
    def start(self) -> JobRunner:
        self._thread = threading.Thread(target=self._loop, name="segany-jobs", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        """Look for a queued job now (a new one was made)."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current image's SegEvery, or at once if it has not started; the
        job stays running, to be resumed by the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set() and not self.service.ready.wait(0.5):
            pass
        if self._stop.is_set() or self.service.error is not None:
            return  # no model: jobs stay queued for a server that has one
        while not self._stop.is_set():
            try:
                job_id = self.next_job()
                if job_id is not None:
                    self.run(job_id)
                    continue
            except StoppedError:
                return
            except SQLAlchemyError as exc:  # the database is away: try again later
                log.warning("job runner: %s", exc)
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def next_job(self) -> int | None:
        """The oldest queued or running job (one left running by a stopped server too)."""
        with self.db.read() as session:
            query = select(Job.id).where(Job.state.in_(ACTIVE)).order_by(Job.id).limit(1)
            return session.scalar(query)

    # ----------------------------------------------------------------- a job
    def run(self, job_id: int, progress: Callable[[Job], None] | None = None) -> Job:
        """Run job ``job_id`` to its end, image by image; ``progress`` is called with the
        job after every image. Returns the job as it ended (done, cancelled or failed;
        still running only if the runner was stopped, by :class:`StoppedError`)."""
        with self.db.session() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == "queued")
                .values(state="running", updated_at=utc_now(), heartbeat_at=utc_now())
                .execution_options(synchronize_session=False)
            )
        first = True
        while True:
            job, image = self._next_image(job_id)
            if progress is not None and first:
                progress(job)
            first = False
            if job.state != "running":
                return job
            if image is None:
                return self._finish(job_id, "done", None)
            try:
                found = self._segment(job, image)
            except StoppedError:
                raise
            except Exception as exc:  # the image or the model failed: say which, stop
                log.exception("job %s failed on image %s", job_id, image.id)
                message = f"image {image.id} ({image.file_name}): {type(exc).__name__}: {exc}"
                return self._finish(job_id, "failed", message[:2000])
            model = Model(found.model_name, found.weights_sha256)
            written = self._write(job_id, image.id, found.records, model)
            if progress is not None:
                progress(written or job)

    def _next_image(self, job_id: int) -> tuple[Job, Image | None]:
        """The job, and the first of its project's images it has not done (counting the
        images still to do into ``total``, as images may be added while it runs)."""
        with self.db.session() as session:
            job = session.get_one(Job, job_id)
            done = select(JobImage.image_id).where(JobImage.job_id == job_id)
            left = select(Image).where(Image.project_id == job.project_id, Image.id.not_in(done))
            image = session.scalar(left.order_by(Image.id).limit(1))
            remaining = session.scalar(select(func.count()).select_from(left.subquery())) or 0
            if job.state == "running" and job.total != job.done + remaining:
                job.total = job.done + remaining
            return job, image

    def _segment(self, job: Job, image: Image) -> Segmented:
        """SegEvery of ``image`` on the model's thread, as background work."""
        path, options = image_path(self.config, image), generator_options(job.settings)
        future: Future[Segmented] = self.service.queue.submit(
            lambda: self.service.segment_everything(image.sha256, path, options, False),
            background=True,
        )
        while True:
            try:
                return future.result(timeout=0.5)
            except FutureTimeout:
                if self._stop.is_set():
                    future.cancel()
                    raise StoppedError() from None
            except CancelledError:
                raise StoppedError() from None

    def _write(self, job_id: int, image_id: int, records: Any, model: Model) -> Job | None:
        """One image's masks, its ``job_images`` row and the job's counts, at once. A job
        cancelled meanwhile still gets the image it was on; one finished or an image done
        by another process gets nothing."""
        with self.db.session() as session:
            job = session.scalar(select(Job).where(Job.id == job_id).with_for_update())
            if job is None or job.state not in ("running", "cancelled"):
                return job
            image = session.get(Image, image_id)
            if image is None or session.get(JobImage, (job_id, image_id)) is not None:
                return job
            stored = store_masks(
                session,
                session.get_one(User, job.created_by),
                session.get_one(Project, job.project_id),
                image,
                records,
                stage="auto",
                status="accepted",
                model=model,
                overlap_iou=float(job.settings["overlap_iou"]),
            )
            session.add(JobImage(job_id=job_id, image_id=image_id, masks=len(stored.created)))
            job.done += 1
            job.masks += len(stored.created)
            job.heartbeat_at = job.updated_at = utc_now()
            return job

    def _finish(self, job_id: int, state: str, error: str | None) -> Job:
        with self.db.session() as session:
            job = session.scalar(select(Job).where(Job.id == job_id).with_for_update())
            assert job is not None
            if job.state == "running":
                job.state, job.error, job.updated_at = state, error, utc_now()
                if state == "done":
                    job.total = job.done
            return job
