"""The Alembic migrations build exactly the schema the ORM describes, on both databases."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from segany.server.database import MIGRATIONS, Database, open_database
from segany.server.tables import Base


def test_migrated_schema_matches_the_tables(db_url: str) -> None:
    db = open_database(db_url)
    try:
        assert db.revision() == "0003"
        db.upgrade()  # a second upgrade is a no-op
        with db.engine.connect() as connection:
            options = {"compare_type": True, "compare_server_default": True}
            context = MigrationContext.configure(connection, opts=options)
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


def _migrate(db: Database, revision: str, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def test_0002_keeps_existing_annotations_as_accepted_and_goes_back(db_url: str) -> None:
    db = open_database(db_url, upgrade=False)
    try:
        _migrate(db, "0001")
        with db.engine.begin() as connection:
            for statement in (
                "INSERT INTO users (id, name, created_at) VALUES (1, 'ann', CURRENT_TIMESTAMP)",
                "INSERT INTO projects (id, name, owner_id, categories, created_at) VALUES "
                "(1, 'p', 1, '[]', CURRENT_TIMESTAMP)",
                "INSERT INTO images (id, project_id, file_name, sha256, stored_as, width, "
                "height, size_bytes, created_at) VALUES (1, 1, 'a.png', 'x', 'x', 2, 2, 1, "
                "CURRENT_TIMESTAMP)",
                "INSERT INTO annotations (id, project_id, image_id, category_id, rle, bbox, "
                "area, stage, deleted, version, created_by, created_at, updated_at) VALUES "
                "(1, 1, 1, 1, '{}', '[]', 1, 'manual', false, 1, 1, CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)",
            ):
                connection.execute(text(statement))
        _migrate(db, "0002")
        assert db.revision() == "0002"
        with db.engine.connect() as connection:
            assert connection.execute(text("SELECT status FROM annotations")).scalar() == (
                "accepted"
            )
            assert connection.execute(text("SELECT settings FROM projects")).scalar() is None
        _migrate(db, "0001", down=True)
        assert db.revision() == "0001"
        assert "jobs" not in db.table_names()
        db.upgrade()
        assert {"jobs", "job_images"} <= set(db.table_names())
    finally:
        db.close()


def test_0003_adds_model_versions_with_one_active_at_most(db_url: str) -> None:
    from sqlalchemy.exc import IntegrityError

    db = open_database(db_url, upgrade=False)
    try:
        _migrate(db, "0002")
        assert "model_versions" not in db.table_names()
        db.upgrade()
        assert db.revision() == "0003"
        insert = (
            "INSERT INTO model_versions (name, label, weights_sha256, created_at, active) "
            "VALUES ('m', :label, :sha, CURRENT_TIMESTAMP, :active)"
        )
        with db.engine.begin() as connection:
            connection.execute(text(insert), {"label": "v1", "sha": "a" * 64, "active": True})
            connection.execute(text(insert), {"label": "v2", "sha": "b" * 64, "active": False})
        with pytest.raises(IntegrityError), db.engine.begin() as connection:
            connection.execute(text(insert), {"label": "v3", "sha": "c" * 64, "active": True})
        with pytest.raises(IntegrityError), db.engine.begin() as connection:
            connection.execute(text(insert), {"label": "v3", "sha": "a" * 64, "active": False})
        _migrate(db, "0002", down=True)
        assert "model_versions" not in db.table_names()
    finally:
        db.close()
