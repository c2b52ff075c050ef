"""Model versions' weights files in the data dir, and loading a version's model.

A version trained here (or served from a checkpoint) keeps its weights as
``DATA/models/weights/<sha256>.safetensors``, named by the file's own sha256, so the
same weights are stored once and a file is checked against its name and its row before
it is loaded. A version of the registry's weights has no file here: the registry loads
and verifies them (the bundled model's by its sha256).
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

from segany.errors import CheckpointError
from segany.fileio import atomic_path
from segany.models.sam import Sam
from segany.server.config import ServerConfig
from segany.server.tables import ModelVersion
from segany.weights import save_state_dict_file, sha256_file

__all__ = ["load_version", "store_model", "store_weights", "version_file"]

SUFFIX = ".safetensors"


def _relative(config: ServerConfig, sha: str) -> str:
    return (config.weights_dir / f"{sha}{SUFFIX}").relative_to(config.data_dir).as_posix()


def store_weights(config: ServerConfig, source: Path) -> tuple[str, str]:
    """Copy the ``.safetensors`` file ``source`` into the data dir (unless the same file is
    there); returns its path relative to the data dir and its sha256."""
    if source.suffix.lower() != SUFFIX:
        raise CheckpointError(f"a model version's weights must be a {SUFFIX} file: {source}")
    sha = sha256_file(source)
    relative = _relative(config, sha)
    target = config.data_dir / relative
    if not (target.is_file() and sha256_file(target) == sha):
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
    return relative, sha


def store_model(config: ServerConfig, model: Sam) -> tuple[str, str]:
    """Save ``model``'s weights into the data dir as safetensors; returns the file's path
    relative to the data dir and its sha256."""
    config.weights_dir.mkdir(parents=True, exist_ok=True)
    tmp = config.weights_dir / f".new-{secrets.token_hex(4)}{SUFFIX}"
    try:
        save_state_dict_file(model.state_dict(), tmp)
        sha = sha256_file(tmp)
        relative = _relative(config, sha)
        tmp.replace(config.data_dir / relative)
    finally:
        tmp.unlink(missing_ok=True)
    return relative, sha


def version_file(config: ServerConfig, version: ModelVersion) -> Path | None:
    """The checked weights file of ``version`` (None: the registry's weights).

    Raises:
        CheckpointError: the file is missing or its sha256 is not the version's.
    """
    if version.path is None:
        return None
    path = config.data_dir / version.path
    if not path.is_file():
        raise CheckpointError(f"the weights of model version {version.label} are missing: {path}")
    if sha256_file(path) != version.weights_sha256:
        raise CheckpointError(
            f"the weights of model version {version.label} ({path}) fail their sha256 check"
        )
    return path


def load_version(config: ServerConfig, version: ModelVersion) -> tuple[Sam, Path | None]:
    """``version``'s model, its weights verified, and the file they came from (None: the
    registry's)."""
    from segany.loading import load_model

    path = version_file(config, version)
    if path is None:
        model = load_model(version.name, progress=False)
        if model.weights_sha256 != version.weights_sha256:
            raise CheckpointError(
                f"model version {version.label} is {version.name}'s registered weights "
                f"{version.weights_sha256[:12]}, but the registry now has "
                f"{(model.weights_sha256 or 'none')[:12]}"
            )
        return model, None
    return load_model(version.name, checkpoint=path, progress=False), path
