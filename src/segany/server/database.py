"""Opening the server's database: engines, sessions and schema upgrades.

SQLite (the default) runs in WAL mode, so readers never wait for the writer, with
``synchronous=FULL`` so that an acknowledged write survives a crash, and every
transaction starts with ``BEGIN IMMEDIATE``: a write lock is taken up front, so two
writers queue on the busy timeout instead of failing mid-transaction. PostgreSQL is
reached by a ``postgresql+psycopg://`` URL and needs nothing special.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from segany.errors import InputError

__all__ = ["Database", "open_database"]

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_MS = 30_000


class Database:
    """An engine and its session factories: :meth:`session` is one read-write transaction,
    :meth:`read` one that only reads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        reader = engine.execution_options(segany_read=True)
        self._readers = sessionmaker(reader, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose work is committed at the end of the block, or rolled back."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading only (on SQLite it takes no write lock)."""
        with self._readers() as session, session.begin():
            yield session

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (a no-op when it is there)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def revision(self) -> str | None:
        """The migration the database is at (None: not created yet)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def table_names(self) -> list[str]:
        return inspect(self.engine).get_table_names()

    def close(self) -> None:
        self.engine.dispose()


def open_database(url: str, *, upgrade: bool = True) -> Database:
    """Connect to ``url`` (an SQLAlchemy URL) and, by default, upgrade its schema.

    Raises:
        InputError: the URL is malformed or names a database driver that isn't installed.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InputError(
            f"not a database URL: {url!r} (e.g. sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/DB)"
        ) from None
    options: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        options["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_MS / 1000}
    else:
        options.update(pool_size=10, max_overflow=20)
    try:
        engine = create_engine(parsed, **options)
    except (NoSuchModuleError, ImportError) as exc:
        raise InputError(f"cannot open {parsed.render_as_string()}: {exc}") from None
    if engine.dialect.name == "sqlite":
        _sqlite_settings(engine)
    database = Database(engine)
    if upgrade:
        database.upgrade()
    return database


def _sqlite_settings(engine: Engine) -> None:
    """WAL, full sync, foreign keys and ``BEGIN IMMEDIATE`` on every SQLite connection."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver leaves BEGIN to us
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        reading = connection.get_execution_options().get("segany_read", False)
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")
