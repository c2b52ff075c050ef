"""The Alembic migrations build exactly the schema the ORM describes, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from segany.server.database import open_database
from segany.server.tables import Base


def test_migrated_schema_matches_the_tables(db_url: str) -> None:
    db = open_database(db_url)
    try:
        assert db.revision() == "0001"
        db.upgrade()  # a second upgrade is a no-op
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        assert set(db.table_names()) >= {"users", "tokens", "projects", "annotations"}
    finally:
        db.close()


def test_sqlite_runs_in_wal_mode_with_full_sync(sqlite_url: str) -> None:
    db = open_database(sqlite_url)
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    db.close()
