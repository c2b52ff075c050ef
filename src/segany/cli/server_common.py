"""What ``serve``, ``user`` and ``project`` share: where the data is, and opening it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from segany.errors import InputError

if TYPE_CHECKING:
    from segany.server.config import ServerConfig
    from segany.server.database import Database

__all__ = ["add_store_arguments", "config_from", "open_store", "require_server_extra"]


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data DIR`` and ``--db URL``."""
    parser.add_argument(
        "--data",
        metavar="DIR",
        type=Path,
        help="data dir: images, embeddings, the default database "
        "(default: $SEGANY_HOME, else the user's data directory)",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="database URL, e.g. postgresql+psycopg://USER@HOST/DB "
        "(default: SQLite in the data dir)",
    )


def require_server_extra() -> None:
    """InputError (exit 2, one line) when the server's dependencies are missing."""
    from segany.server import INSTALL_HINT, missing_dependency

    missing = missing_dependency()
    if missing is not None:
        raise InputError(f"the server needs {missing!r}, which is not installed: {INSTALL_HINT}")


def config_from(args: argparse.Namespace, **options: object) -> ServerConfig:
    from segany.server.config import ServerConfig, default_data_dir

    data = (args.data or default_data_dir()).expanduser()
    return ServerConfig(data_dir=data, db_url=args.db, **options)  # type: ignore[arg-type]


def open_store(args: argparse.Namespace) -> tuple[ServerConfig, Database]:
    """The configuration and the database (upgraded to the newest schema)."""
    require_server_extra()
    from segany.server.database import open_database

    config = config_from(args)
    return config, open_database(config.database_url)
