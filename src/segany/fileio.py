"""Writing files atomically: a reader (or a resumed job) never sees half a file."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path, *, make_parents: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; on success fsync it and rename it.

    The temporary file (``.NAME.XXXXXXXX.tmp``) is removed on any error. With
    ``make_parents`` False a missing folder is an ``OSError``.
    """
    target = Path(path)
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, payload: bytes, *, make_parents: bool = True) -> Path:
    """Write ``payload`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, make_parents=make_parents) as tmp, open(tmp, "xb") as handle:
        handle.write(payload)
    return Path(path)
