"""Weights files: safe loading and saving (downloads live in :mod:`segany.download`).

This module deals with weights *files* only. It knows nothing about particular models; checking
that a state dict has the keys and shapes a model expects is done by the model code.

* :func:`cache_dir`, :func:`download` and :func:`sha256_file` are re-exported from
  :mod:`segany.download` (the cache directory and verified, resumable downloads).
* :func:`load_state_dict_file` reads ``.safetensors`` files or PyTorch pickles, the latter
  strictly with ``weights_only=True``: a checkpoint that would need to run code to load is
  refused, never loaded.
* :func:`save_state_dict_file` writes either format atomically.
"""

from __future__ import annotations

import contextlib
import pickle
import re
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError

from segany.download import cache_dir, download, sha256_file
from segany.errors import CheckpointError, InputError
from segany.fileio import atomic_path

__all__ = [
    "cache_dir",
    "download",
    "load_state_dict_file",
    "save_state_dict_file",
    "sha256_file",
]

_NESTED_KEYS = ("model", "state_dict")


# --------------------------------------------------------------------------------------------
# Loading and saving state dicts
# --------------------------------------------------------------------------------------------


def _short_reason(exc: BaseException) -> str:
    """One short line describing ``exc``."""
    text = str(exc).strip().splitlines()
    first = text[0].strip() if text else ""
    reason = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return reason if len(reason) <= 160 else reason[:157] + "..."


def _unreadable(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(
        f"cannot read checkpoint {path}: it is truncated or not a PyTorch/safetensors weights "
        f"file ({reason})"
    )


def _weights_only_refusal(path: Path, exc: pickle.UnpicklingError) -> CheckpointError:
    """Turn torch's weights-only refusal into a CheckpointError."""
    message = str(exc)
    # torch words it "Unsupported global: GLOBAL x.y was not an allowed global" or, for
    # modules it blocks outright (os, posix, subprocess, ...), "unsupported GLOBAL x.y whose
    # module x is blocked"
    found = re.search(r"unsupported global: GLOBAL (\S+)|unsupported GLOBAL (\S+)", message, re.I)
    if found is not None:
        return CheckpointError(
            f"checkpoint {path} contains objects other than tensors "
            f"({found.group(1) or found.group(2)}) and was "
            "refused for safety: loading it could run code stored in the file. If you trust "
            "its source, load it yourself and re-save just its state dict "
            "(segany.weights.save_state_dict_file)"
        )
    detail = re.search(r"WeightsUnpickler error:\s*(.+)", message)
    reason = detail.group(1).strip() if detail else _short_reason(exc)
    return _unreadable(path, f"refused by the safe weights-only unpickler: {reason}")


def _torch_load(path: Path) -> object:
    """``torch.load`` with ``weights_only=True``, mapping its many failure modes."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as exc:
        raise CheckpointError(f"cannot open checkpoint {path}: permission denied") from exc
    except pickle.UnpicklingError as exc:
        if "weights only load failed" in str(exc).lower():
            raise _weights_only_refusal(path, exc) from exc
        raise _unreadable(path, _short_reason(exc)) from exc
    except EOFError as exc:
        raise _unreadable(path, "unexpected end of file") from exc
    except Exception as exc:  # garbage input makes torch raise nearly any exception type
        reason = _short_reason(exc)
        with contextlib.suppress(OSError), open(path, "rb") as fh:
            if fh.read(4) == b"PK\x03\x04":
                reason = f"damaged or incomplete zip archive; {reason}"
        raise _unreadable(path, reason) from exc


def _tensor_holders(obj: Mapping[Any, Any]) -> list[str]:
    """Top-level keys of ``obj`` whose values are, or contain, tensors."""

    def has_tensor(value: object, depth: int = 0) -> bool:
        if isinstance(value, torch.Tensor):
            return True
        if depth > 8:
            return False
        if isinstance(value, Mapping):
            return any(has_tensor(v, depth + 1) for v in value.values())
        if isinstance(value, (list, tuple)):
            return any(has_tensor(v, depth + 1) for v in value)
        return False

    return [str(key) for key, value in obj.items() if has_tensor(value)]


def _as_state_dict(path: Path, obj: object) -> dict[str, torch.Tensor]:
    """Unwrap ``{"model": sd}``/``{"state_dict": sd}`` and check for a str -> Tensor mapping."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"checkpoint {path} does not hold a state dict (a mapping of names to tensors): it "
            f"holds a {type(obj).__name__}"
        )
    has_direct_tensor = any(isinstance(v, torch.Tensor) for v in obj.values())
    if not has_direct_tensor:
        holders = _tensor_holders(obj)
        if (
            len(holders) == 1
            and holders[0] in _NESTED_KEYS
            and isinstance(obj[holders[0]], Mapping)
        ):
            obj = obj[holders[0]]
        elif len(holders) > 1:
            raise CheckpointError(
                f"checkpoint {path} holds tensors under several keys ({', '.join(holders)}); "
                "cannot tell which are the model weights. Save the model state dict alone"
            )
    assert isinstance(obj, Mapping)
    if not obj:
        raise CheckpointError(f"checkpoint {path} holds no tensors")
    state_dict: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise CheckpointError(
                f"checkpoint {path} is not a state dict (a mapping of names to tensors): key "
                f"{key!r} ({type(key).__name__}) is not a name"
            )
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"checkpoint {path} is not a state dict (a mapping of names to tensors): entry "
                f"{key!r} is a {type(value).__name__}"
            )
        state_dict[key] = value
    return state_dict


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict (parameter name -> CPU tensor) from a weights file, safely.

    ``.safetensors`` files are read with :func:`safetensors.torch.load_file`; anything else
    with ``torch.load(..., map_location="cpu", weights_only=True)``. There is deliberately no
    fallback to ``weights_only=False``: a pickle that needs to run code is refused. A training
    checkpoint whose only tensors sit under ``"model"`` or ``"state_dict"`` is unwrapped.

    Raises:
        CheckpointError: the file is missing, truncated or not a weights file, contains
            objects other than tensors (refused for safety), or does not hold a mapping of
            names to tensors.
        InputError: ``path`` is not a ``str`` or path-like object.
    """
    if not isinstance(path, str | PathLike):
        raise InputError(f"a checkpoint must be a file path, not {type(path).__name__}")
    path = Path(path)
    try:
        found = path.is_file()
    except (OSError, ValueError) as exc:  # e.g. "File name too long"
        raise CheckpointError(f"cannot open checkpoint {path}: {_short_reason(exc)}") from exc
    if not found:
        raise CheckpointError(f"checkpoint not found: {path}")
    obj: object
    if path.suffix.lower() == ".safetensors":
        try:
            obj = safetensors.torch.load_file(str(path), device="cpu")
        except PermissionError as exc:
            raise CheckpointError(f"cannot open checkpoint {path}: permission denied") from exc
        except (SafetensorError, OSError, ValueError) as exc:
            raise _unreadable(path, _short_reason(exc)) from exc
    else:
        obj = _torch_load(path)
    return _as_state_dict(path, obj)


def _prepare_for_safetensors(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors, none sharing storage (safetensors refuses sharing)."""
    seen: set[int] = set()
    prepared: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        t = tensor.detach().cpu()
        if not t.is_contiguous():
            t = t.contiguous()
        if t.numel() > 0:
            ptr = t.untyped_storage().data_ptr()
            if ptr in seen:
                t = t.clone()
                ptr = t.untyped_storage().data_ptr()
            seen.add(ptr)
        prepared[key] = t
    return prepared


def save_state_dict_file(state_dict: Mapping[str, torch.Tensor], path: str | Path) -> Path:
    """Save ``state_dict`` to ``path`` atomically and return the path.

    ``.safetensors`` paths are written with safetensors (tensors are made contiguous and
    tensors that share storage are cloned, which the format requires); anything else with
    :func:`torch.save`. The data is written to a temporary file in the same directory that is
    renamed over ``path`` only when complete, so readers never see a half-written file.

    Raises:
        InputError: ``state_dict`` is not a mapping of ``str`` to tensors.
    """
    path = Path(path)
    if not isinstance(state_dict, Mapping):
        raise InputError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise InputError(
                f"state_dict must map names to tensors; entry {key!r} is a {type(value).__name__}"
            )
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".safetensors":
            tensors = _prepare_for_safetensors(state_dict)
            safetensors.torch.save_file(tensors, str(tmp), metadata={"format": "pt"})
        else:
            torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp)
    return path
