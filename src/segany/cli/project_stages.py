"""``segany project settings|propose|auto|jobs``: the data engine's semi-automatic and
automatic stages from the command line.

``propose`` and ``auto --run`` load the model in this process (no server needed) and write
to the same database and embedding cache as ``segany serve``; ``auto`` alone queues a job
for a running server, and ``auto --wait`` follows it. Ctrl+C during ``auto --run`` cancels
the job: the images done so far keep their masks, the one in progress gets none.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from segany.cli.common import positive_int
from segany.cli.server_common import add_store_arguments, config_from, open_store
from segany.errors import InputError

if TYPE_CHECKING:
    from segany.server.config import ServerConfig
    from segany.server.database import Database
    from segany.server.inference import ModelService
    from segany.server.tables import Job, User

__all__ = ["register"]

EXIT_UNFINISHED = 1
# (flag, settings key, type, help)
_SETTINGS = (
    ("--points-per-side", "points_per_side", int, "SegEvery's grid of N x N points (16)"),
    ("--pred-iou-thresh", "pred_iou_thresh", float, "keep masks with predicted IoU > T (0.88)"),
    (
        "--stability-score-thresh",
        "stability_score_thresh",
        float,
        "keep masks with stability >= T (0.95)",
    ),
    (
        "--overlap-iou",
        "overlap_iou",
        float,
        "skip masks whose IoU with an annotation already there is >= T (0.5)",
    ),
)


def register(actions: Any) -> list[argparse.ArgumentParser]:
    """Add the stages' actions to ``segany project``'s subparsers; returns their parsers."""
    settings = actions.add_parser("settings", help="show or change a project's SegEvery settings")
    settings.add_argument("id", type=positive_int)
    settings.add_argument("--strategy", choices=("grid", "objects"), help="grid (default)")
    for flag, key, kind, text in _SETTINGS:
        settings.add_argument(flag, dest=key, type=kind, metavar="N", help=text)
    settings.set_defaults(func=run_settings)
    propose = actions.add_parser(
        "propose", help="SegEvery proposals for a project's images, in this process"
    )
    propose.add_argument("id", type=positive_int)
    propose.add_argument("--image", type=positive_int, metavar="IMAGE_ID", help="only this one")
    auto = actions.add_parser("auto", help="queue an automatic job (SegEvery on every image)")
    auto.add_argument("id", type=positive_int)
    how = auto.add_mutually_exclusive_group()
    how.add_argument("--wait", action="store_true", help="follow it until a server has run it")
    how.add_argument(
        "--run", action="store_true", help="run it in this process (when no server runs)"
    )
    for sub in (propose, auto):
        sub.add_argument("--user", help="who the masks are by (default: the project's owner)")
        sub.add_argument("--model", metavar="NAME", help="the model (default: the bundled one)")
    propose.set_defaults(func=run_propose)
    auto.set_defaults(func=run_auto)
    jobs = actions.add_parser("jobs", help="a project's automatic jobs and their progress")
    jobs.add_argument("id", type=positive_int)
    jobs.set_defaults(func=run_jobs)
    parsers = [settings, propose, auto, jobs]
    for sub in parsers:
        add_store_arguments(sub)
    return parsers


def run_settings(args: argparse.Namespace) -> int:
    from segany.server.settings import effective, merged
    from segany.server.store import get_project

    changes = {k: getattr(args, k) for k in ("strategy", *(s[1] for s in _SETTINGS))}
    changes = {k: v for k, v in changes.items() if v is not None}
    _, db = open_store(args)
    with db.session() as session:
        project = get_project(session, None, args.id)
        if changes:
            project.settings = merged(project.settings, changes) or None
        print(json.dumps(effective(project.settings)))
    return 0


@contextmanager
def _model(args: argparse.Namespace, db: Database) -> Iterator[ModelService]:
    """The model behind its queue, in this process, as the server runs it: the database's
    active model version, unless --model names another."""
    from segany.server.inference import ModelService
    from segany.server.switching import VersionFollower

    config = config_from(args, model=args.model)
    prepare = VersionFollower(db, config).prepare if args.model is None else None
    service = ModelService(config, prepare=prepare)
    try:
        if not service.wait_ready():
            raise InputError(f"the model failed to load: {service.error}")
        yield service
    finally:
        service.close()


def _user(db: Database, name: str | None, project_id: int) -> User:
    from segany.server.auth import find_user
    from segany.server.store import get_project
    from segany.server.tables import User

    with db.read() as session:
        project = get_project(session, None, project_id)
        return find_user(session, name) if name else session.get_one(User, project.owner_id)


def run_propose(args: argparse.Namespace) -> int:
    from segany.server.proposals import Model, generator_options, image_path, write_proposals
    from segany.server.store import get_project, list_images

    if args.model is not None:
        from segany.registry import get_spec

        get_spec(args.model)  # an unknown name fails before the model loads
    config, db = open_store(args)
    user = _user(db, args.user, args.id)
    with db.read() as session:
        project = get_project(session, None, args.id)
        images = [i for i in list_images(session, project) if args.image in (None, i.id)]
    if args.image is not None and not images:
        raise InputError(f"no image {args.image} in project {args.id}")
    options = generator_options(project.settings)
    created = skipped = 0
    with _model(args, db) as service:
        for image in tqdm(images, desc="proposals", unit="image", file=sys.stderr):
            segment = partial(
                service.segment_everything, image.sha256, image_path(config, image), options
            )
            found = service.queue.submit(segment, background=True).result()
            model = Model(found.model_name, found.weights_sha256)
            stored = write_proposals(db, user.id, project.id, image.id, found.records, model)
            created, skipped = created + len(stored.created), skipped + stored.skipped
    print(json.dumps({"images": len(images), "created": created, "skipped": skipped}))
    return 0


def run_auto(args: argparse.Namespace) -> int:
    from segany.server.errors import ConflictError
    from segany.server.jobs import ACTIVE, create_job, get_job, list_jobs
    from segany.server.store import get_project

    if args.model is not None:
        from segany.registry import get_spec

        get_spec(args.model)
    config, db = open_store(args)
    user = _user(db, args.user, args.id)
    with db.session() as session:
        project = get_project(session, None, args.id)
        try:
            job = create_job(session, user, project)
        except ConflictError:
            if not (args.run or args.wait):
                raise
            job = next(j for j in list_jobs(session, project) if j.state in ACTIVE)
            print(f"segany: job {job.id} is already {job.state}; taking it up", file=sys.stderr)
    if not (args.run or args.wait):
        print(job.id)
        print(f"segany: job {job.id} queued: a running server runs it", file=sys.stderr)
        return 0
    with tqdm(total=job.total, desc=f"job {job.id}", unit="image", file=sys.stderr) as bar:

        def show(current: Job) -> None:
            bar.total = current.total
            bar.n = current.done
            bar.set_postfix(masks=current.masks, refresh=False)
            bar.refresh()

        if args.run:
            job = _run_here(args, db, config, job.id, show)
        else:
            if job.state == "queued":
                bar.write("segany: waiting for a server to run it (Ctrl+C stops waiting)")
            while job.state in ACTIVE:
                time.sleep(0.5)
                with db.read() as session:
                    job = get_job(session, None, job.id)
                show(job)
    return _ended(job)


def _run_here(
    args: argparse.Namespace,
    db: Database,
    config: ServerConfig,
    job_id: int,
    show: Callable[[Job], None],
) -> Job:
    """Run the job in this process; Ctrl+C cancels it (the image in progress is dropped)."""
    from segany.server.errors import ConflictError
    from segany.server.jobs import JobRunner, cancel_job

    with _model(args, db) as service:
        try:
            return JobRunner(db, config, service).run(job_id, progress=show)
        except KeyboardInterrupt:
            try:
                with db.session() as session:
                    job = cancel_job(session, None, job_id)
            except ConflictError:  # it had just finished
                raise KeyboardInterrupt from None
            print(
                f"segany: job {job_id} cancelled after {job.done} of {job.total} images",
                file=sys.stderr,
            )
            raise


def _ended(job: Job) -> int:
    summary = {"job": job.id, "state": job.state, "images": job.done, "masks": job.masks}
    print(json.dumps(summary))
    if job.state != "done":
        reason = f": {job.error}" if job.error else ""
        print(f"segany: job {job.id} ended {job.state}{reason}", file=sys.stderr)
        return EXIT_UNFINISHED
    return 0


def run_jobs(args: argparse.Namespace) -> int:
    from segany.server.jobs import list_jobs
    from segany.server.store import get_project

    _, db = open_store(args)
    with db.read() as session:
        for job in list_jobs(session, get_project(session, None, args.id)):
            when = job.created_at.strftime("%Y-%m-%d %H:%M")
            print(
                f"{job.id}\t{job.state}\t{job.done}/{job.total} images\t{job.masks} masks"
                f"\t{when}\t{job.error or ''}"
            )
    return 0
