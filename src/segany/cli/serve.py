"""``segany serve``: the annotation server (FastAPI on uvicorn) on a database."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from segany.cli.common import positive_int
from segany.cli.server_common import add_store_arguments, config_from, require_server_extra
from segany.errors import InputError

__all__ = ["register", "run"]

LOCAL_USER = "local"


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the annotation server (projects, images, annotations, the model)",
        description=(
            "Run the data engine's annotation server: a REST API under /api (see /docs), "
            "the model behind it with embeddings cached on disk, SQLite in the data dir "
            "or PostgreSQL by --db. With no users yet on 127.0.0.1, a user 'local' is "
            "made and its token printed; other hosts need users (segany user add)."
        ),
    )
    add_store_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=positive_int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--model", metavar="NAME", help="registered model to serve (default: the bundled one)"
    )
    parser.add_argument(
        "--queue",
        type=positive_int,
        default=32,
        metavar="N",
        help="requests that may wait for the model; more answer 503",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_server_extra()
    import uvicorn
    from sqlalchemy import func, select

    from segany.registry import get_spec
    from segany.server.app import create_app
    from segany.server.auth import add_user, issue_token
    from segany.server.config import LOOPBACK_HOSTS
    from segany.server.database import open_database
    from segany.server.tables import User

    if args.model is not None:
        get_spec(args.model)  # an unknown name is an error now, not in the server's log
    config = config_from(args, model=args.model, queue_size=args.queue)
    db = open_database(config.database_url)
    with db.session() as session:
        users = session.scalar(select(func.count()).select_from(User)) or 0
        if users == 0 and args.host not in LOOPBACK_HOSTS:
            raise InputError(
                f"refusing to listen on {args.host} with no users: anyone who can reach it "
                "could use it; add one first with 'segany user add NAME'"
            )
        if users == 0:
            issued = issue_token(session, add_user(session, LOCAL_USER))
            print(
                f"segany: made user '{LOCAL_USER}'; its API token (shown once): {issued.token}",
                file=sys.stderr,
            )
    print(
        f"segany: data in {config.data_dir}, database {_safe(config.database_url)}", file=sys.stderr
    )
    app = create_app(config, db=db)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    db.close()
    return 0


def _safe(url: str) -> str:
    """The URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
