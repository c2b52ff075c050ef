"""``segany train --from-project ID``: fine-tune the served model version on a project's
accepted annotations and register the result as the next version
(:mod:`segany.server.retrain`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from segany.cli.common import positive_int
from segany.cli.server_common import add_store_arguments, open_store
from segany.errors import InputError

__all__ = ["add_arguments", "refuse_without_project", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--from-project ID``, ``--activate``, ``--data DIR`` and ``--db URL``."""
    group = parser.add_argument_group(
        "from a project",
        "fine-tune the server's active model version on a project's accepted annotations; "
        "the weights are stored in the data dir and registered as the next version",
    )
    group.add_argument(
        "--from-project",
        type=positive_int,
        metavar="ID",
        help="train on project ID's accepted annotations (default 200 steps, lr 2e-4)",
    )
    group.add_argument(
        "--activate",
        action="store_true",
        help="make the new version the served one (a running server switches within seconds)",
    )
    add_store_arguments(group)  # type: ignore[arg-type]


def refuse_without_project(args: argparse.Namespace) -> None:
    """InputError when a --from-project option comes without --from-project."""
    given = [name for name in ("activate", "data", "db") if getattr(args, name)]
    if given:
        names = ", ".join("--" + name for name in given)
        raise InputError(f"{names}: only with --from-project ID")


def run(args: argparse.Namespace, settings: dict[str, Any]) -> int:
    """Fine-tune; print the new version and the last logged metrics as JSON."""
    from segany.server.retrain import retrain

    if args.resume:
        raise InputError("--resume does not go with --from-project: start a new run (-o)")
    if args.init is not None:
        raise InputError("--init does not go with --from-project: it starts from the active one")
    settings = {k: v for k, v in settings.items() if k != "model"}  # the version's own
    config, db = open_store(args)
    try:
        result = retrain(
            db,
            config,
            args.from_project,
            args.out,
            settings,
            activate=args.activate,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    finally:
        db.close()
    summary = result.summary()
    print(json.dumps(summary, indent=2))
    state = "active" if result.version.active else "not active"
    print(
        f"segany: registered {summary['version']} ({state}), trained from {summary['parent']} "
        f"on {result.masks} masks of {result.images} images",
        file=sys.stderr,
    )
    return 0
