"""Writing files atomically: a reader (or a resumed batch) never sees half a file."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def write_atomic(path: str | Path, payload: bytes, *, make_parents: bool = True) -> Path:
    """Write ``payload`` to ``path`` through a temporary file, fsync and :func:`os.replace`.

    The temporary file (``.NAME.XXXXXXXX.tmp`` beside the target) is removed on any error.
    With ``make_parents`` False a missing folder is an ``OSError``.
    """
    target = Path(path)
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target
