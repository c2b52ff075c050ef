"""The data engine's server: ``segany serve``, an annotation server on a real database.

Layout (one concern per module):

* :mod:`.config` -- where things live (data dir, database URL) and the server's limits;
* :mod:`.tables` -- the database tables (SQLAlchemy 2 ORM), :mod:`.migrations` -- their
  Alembic migrations, :mod:`.database` -- engines, sessions and upgrades;
* :mod:`.auth` -- users, API tokens and passwords; :mod:`.store` -- projects, members and
  images; :mod:`.editing` -- annotations and their history (undo, redo);
* :mod:`.uploads` -- checking and storing uploaded image files;
* :mod:`.embeddings` -- the on-disk embedding cache; :mod:`.inference` -- the model behind
  a bounded queue; :mod:`.exchange` -- exports and COCO imports;
* :mod:`.app` and :mod:`.routes` -- the FastAPI application.

The server's dependencies come with the ``segany[server]`` extra; nothing here is imported
by ``import segany``.
"""

# No `from __future__ import annotations` here: it would bind the name `annotations` on this
# package and hide the submodule of that name from `from segany.server import annotations`.

__all__ = ["INSTALL_HINT", "missing_dependency"]

#: What to run when the server extra is missing.
INSTALL_HINT = "pip install 'segany[server]'"

_REQUIRED = ("fastapi", "uvicorn", "sqlalchemy", "alembic", "multipart", "pycocotools")


def missing_dependency() -> str | None:
    """The first of the server's dependencies that is not installed, or None."""
    from importlib.util import find_spec

    for name in _REQUIRED:
        if find_spec(name) is None:
            return name
    return None
