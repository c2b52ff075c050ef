"""Where the server keeps its data, and the limits it enforces."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LOOPBACK_HOSTS", "ServerConfig", "default_data_dir", "default_db_url"]

#: Hosts that only this machine can reach: serving on them needs no users.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def default_data_dir() -> Path:
    """``$SEGANY_HOME`` when set, else the user's data directory (e.g. ~/.local/share/segany).

    ``segany serve``, ``segany user`` and ``segany project`` all start from here, so they
    agree on which database and files they mean.
    """
    home = os.environ.get("SEGANY_HOME")
    if home:
        return Path(home).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("segany", appauthor=False))


def default_db_url(data_dir: Path) -> str:
    """The embedded default database: SQLite in ``data_dir/segany.db``."""
    return f"sqlite:///{data_dir.resolve() / 'segany.db'}"


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``segany serve`` is started with.

    data_dir: image files (``images/``), cached embeddings (``embeddings/``) and exported
      decoders (``models/``); db_url: an SQLAlchemy URL (None: SQLite under ``data_dir``);
      model: registered model name (None: the bundled default); checkpoint: a weights file
      instead of the registered ones.
    Limits: an upload's bytes and pixels; the inference queue's length (requests beyond it
    answer 503) and a request's wait for the model (beyond it, 503); how many of a
    project's next images are encoded ahead of time; a login token's lifetime; how often
    the server looks for a model version activated elsewhere (the CLI, another server).
    """

    data_dir: Path
    db_url: str | None = None
    model: str | None = None
    checkpoint: Path | None = None
    max_upload_bytes: int = 64 << 20
    max_image_pixels: int = 50_000_000
    queue_size: int = 32
    inference_timeout_s: float = 30.0
    prefetch: int = 2
    login_hours: float = 24.0 * 7
    token_cache_s: float = 5.0
    version_poll_s: float = 2.0

    @property
    def database_url(self) -> str:
        return self.db_url or default_db_url(self.data_dir)

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def embeddings_dir(self) -> Path:
        return self.data_dir / "embeddings"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def weights_dir(self) -> Path:
        """Model versions' weights files, ``<sha256>.safetensors``."""
        return self.models_dir / "weights"
