"""Database fixtures of the server tests.

* ``postgres_server``: one throw-away PostgreSQL per pytest-xdist worker, started by the
  first test that asks for it and stopped at the end of the session. Skipped where
  PostgreSQL cannot run, unless ``SEGANY_REQUIRE_POSTGRES=1`` (CI), where that fails.
* ``postgres_url``: a fresh empty database of that server per test (dropped afterwards).
* ``sqlite_url``: a SQLite file in the test's ``tmp_path``.
* ``db_url``: each test that takes it runs twice, on ``sqlite`` and on ``postgresql``.
* ``service``: the bundled model behind the server's queue, one per test module.
* ``served``: a :class:`Served` app (TestClient) on ``db_url`` with users ann and bob.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from segany.server.app import create_app
from segany.server.auth import add_user, issue_token
from segany.server.config import ServerConfig
from segany.server.database import Database, open_database
from segany.server.inference import ModelService
from tests.server.postgres import PostgresServer, require_postgres

_database_numbers = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    require_postgres()
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"test_{next(_database_numbers)}"
    yield postgres_server.create_database(name)
    # not needed for isolation (every test has its own name), only to keep the disk small
    postgres_server.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/segany.db"


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


# --------------------------------------------------------------------- the app


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelService]:
    """The bundled model behind a queue, shared by a module's apps (its own cache dir)."""
    config = ServerConfig(data_dir=tmp_path_factory.mktemp("model"))
    model = ModelService(config)
    assert model.wait_ready(120), model.error
    yield model
    model.close()


@dataclass
class Served:
    """A test client on a fresh database and data dir, and users with their tokens."""

    client: TestClient
    app: FastAPI
    config: ServerConfig
    tokens: dict[str, str]

    def auth(self, user: str = "ann") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    @property
    def db(self) -> Database:
        database: Database = self.app.state.db
        return database

    def project(self, name: str = "p", user: str = "ann") -> int:
        answer = self.client.post("/api/projects", json={"name": name}, headers=self.auth(user))
        assert answer.status_code == 201, answer.text
        return int(answer.json()["id"])

    def upload(self, project: int, data: bytes, name: str = "a.png", user: str = "ann") -> Any:
        return self.client.post(f"/api/projects/{project}/images",
                                files={"file": (name, data, "image/png")},
                                headers=self.auth(user))  # fmt: skip


def make_served(url: str, data_dir: Path, service: ModelService | None, **limits: Any) -> Any:
    config = ServerConfig(data_dir=data_dir, db_url=url, **limits)
    db = open_database(url)
    tokens = {}
    with db.session() as session:
        for name in ("ann", "bob"):
            tokens[name] = issue_token(session, add_user(session, name, "password")).token
    app = create_app(config, db=db, service=service, with_model=service is not None)
    return Served(TestClient(app), app, config, tokens), db


@pytest.fixture
def served(db_url: str, tmp_path: Path, service: ModelService) -> Iterator[Served]:
    """The app on SQLite and on PostgreSQL, with the bundled model; users ann and bob."""
    state, db = make_served(db_url, tmp_path / "data", service)
    with state.client:
        yield state
    db.close()


def png_bytes(height: int = 96, width: int = 128, seed: int = 0) -> bytes:
    """A PNG of a bright rectangle on a dark, noisy background."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 40, size=(height, width, 3), dtype=np.uint8)
    image[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = (220, 180, 40)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()
