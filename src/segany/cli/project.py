"""``segany project``: create projects, import images and COCO files, export datasets; the
semi-automatic and automatic stages' commands are in :mod:`segany.cli.project_stages`.

(``segany export`` is the ONNX exporter; dataset exports live here.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from segany.cli import project_stages
from segany.cli.common import positive_int
from segany.cli.server_common import add_store_arguments, open_store
from segany.errors import InputError, SegAnyError

__all__ = ["register"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "project",
        help="projects: create, import, export, proposals and automatic jobs",
        description="Manage the annotation server's projects.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a project (label set: COCO's 80)")
    create.add_argument("name")
    create.add_argument("--owner", required=True, help="the owning user's name")
    create.set_defaults(func=run_create)
    listing = actions.add_parser("list", help="list all projects")
    listing.set_defaults(func=run_list)
    member = actions.add_parser("add-member", help="give a user access to a project")
    member.add_argument("id", type=positive_int)
    member.add_argument("user")
    member.set_defaults(func=run_member)
    imports = actions.add_parser(
        "import", help="add image files (or folders of them) and, with --coco, annotations"
    )
    imports.add_argument("id", type=positive_int)
    imports.add_argument("paths", nargs="*", type=Path, metavar="PATH")
    imports.add_argument(
        "--coco", type=Path, metavar="FILE", help="a COCO instances file for the project's images"
    )
    imports.add_argument("--user", help="who the annotations are by (default: the owner)")
    imports.set_defaults(func=run_import)
    export = actions.add_parser("export", help="write a project's annotations as a dataset")
    export.add_argument("id", type=positive_int)
    export.add_argument("--format", choices=("coco", "sa1b", "yolo", "png"), default="coco")
    export.add_argument(
        "--segmentation",
        choices=("rle", "polygon"),
        default="rle",
        help="COCO masks as RLE (exact, default) or polygons (holes kept)",
    )
    export.add_argument(
        "-o",
        "--out",
        type=Path,
        required=True,
        help="the JSON file (coco) or a folder (sa1b, yolo, png)",
    )
    export.set_defaults(func=run_export)
    for sub in (create, listing, member, imports, export):
        add_store_arguments(sub)
    project_stages.register(actions)


def run_create(args: argparse.Namespace) -> int:
    from segany.server.auth import find_user
    from segany.server.store import create_project

    _, db = open_store(args)
    with db.session() as session:
        project = create_project(session, find_user(session, args.owner), args.name)
    print(project.id)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from sqlalchemy import func, select

    from segany.server.tables import Image, Project, User

    _, db = open_store(args)
    with db.read() as session:
        for project in session.scalars(select(Project).order_by(Project.id)):
            owner = session.get_one(User, project.owner_id).name
            count = session.scalar(select(func.count()).where(Image.project_id == project.id))
            print(f"{project.id}\t{project.name}\t{owner}\t{count} images")
    return 0


def run_member(args: argparse.Namespace) -> int:
    from segany.server.auth import find_user
    from segany.server.store import add_member, get_project

    _, db = open_store(args)
    with db.session() as session:
        add_member(session, get_project(session, None, args.id), find_user(session, args.user))
    return 0


def _image_files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"no such file or folder: {path}")
    return found


def run_import(args: argparse.Namespace) -> int:
    """Add images (a bad file is reported and skipped), then the COCO file's annotations."""
    from segany.data.coco import read_coco_file
    from segany.server.auth import find_user
    from segany.server.exchange import add_image, import_dataset
    from segany.server.store import get_project
    from segany.server.tables import User
    from segany.server.uploads import check_image

    if not args.paths and args.coco is None:
        raise InputError("nothing to import: give image files or folders, and/or --coco FILE")
    files = _image_files(args.paths)
    dataset = read_coco_file(args.coco) if args.coco is not None else None
    config, db = open_store(args)
    with db.read() as session:
        project = get_project(session, None, args.id)
    added = failed = 0
    for path in tqdm(files, desc="images", unit="image", disable=len(files) < 2):
        try:
            checked = check_image(path.read_bytes(), max_pixels=config.max_image_pixels)
            added += add_image(db, config, project.id, path.name, checked)[1]
        except (SegAnyError, OSError) as exc:
            failed += 1
            tqdm.write(f"segany: skipped {path}: {exc}", file=sys.stderr)
    summary: dict[str, int] = {"images_added": added, "images_failed": failed}
    if dataset is not None:
        with db.session() as session:
            project = get_project(session, None, args.id)
            user = (
                find_user(session, args.user)
                if args.user
                else session.get_one(User, project.owner_id)
            )
            summary.update(import_dataset(session, user, project, dataset))
    print(json.dumps(summary))
    return 1 if failed else 0


def run_export(args: argparse.Namespace) -> int:
    from segany.server.exchange import project_dataset, write_export
    from segany.server.store import get_project

    config, db = open_store(args)
    with db.read() as session:
        dataset, files = project_dataset(session, get_project(session, None, args.id))
    out = write_export(dataset, files, args.format, args.out, config, args.segmentation)
    print(
        f"segany: wrote {len(dataset.annotations)} annotations of {len(dataset.images)} "
        f"images to {out}",
        file=sys.stderr,
    )
    return 0
