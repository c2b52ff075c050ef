"""The throw-away PostgreSQL of tests/server/postgres.py: a real server, fresh databases."""

from __future__ import annotations

import sqlalchemy as sa

from tests.server.postgres import PostgresServer


def test_database_is_real_postgres(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            version = int(
                conn.execute(sa.text("SELECT current_setting('server_version_num')")).scalar_one()
            )
            assert version >= 150000
            conn.execute(sa.text("CREATE TABLE items (id integer PRIMARY KEY, name text)"))
            conn.execute(sa.text("INSERT INTO items VALUES (1, 'mask')"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id, name FROM items")).all() == [(1, "mask")]
    finally:
        engine.dispose()


def test_databases_are_independent(postgres_url: str, postgres_server: PostgresServer) -> None:
    first = sa.create_engine(postgres_url)
    second = sa.create_engine(postgres_server.create_database("independent"))
    try:
        with first.begin() as conn:
            assert sa.inspect(conn).get_table_names() == []  # not the previous test's table
            conn.execute(sa.text("CREATE TABLE only_here (x integer)"))
            conn.execute(sa.text("INSERT INTO only_here VALUES (7)"))
        with second.connect() as conn:
            assert not sa.inspect(conn).has_table("only_here")
            assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == "independent"
        with first.connect() as conn:
            assert conn.execute(sa.text("SELECT x FROM only_here")).scalar_one() == 7
    finally:
        first.dispose()
        second.dispose()
        postgres_server.drop_database("independent")
