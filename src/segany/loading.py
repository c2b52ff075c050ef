"""Build a registered model and fill it with weights: ``segany.load_model``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TypeVar

import torch

from . import weights as weights_io
from .engine import MODES, apply_mode
from .errors import CheckpointError, InputError
from .models.init import skip_weight_init
from .models.sam import Sam, build_sam
from .registry import DEFAULT_MODEL, ModelSpec, WeightsInfo, get_spec, list_models

_SHOWN_KEYS = 5
T = TypeVar("T")


BUNDLED = "bundled:"  # URL scheme of weights shipped inside the package (segany/assets)


def bundled_path(filename: str) -> Path:
    """Path of a weights file shipped in the package's ``assets`` folder."""
    return Path(str(resources.files("segany") / "assets" / filename))


def cached_path(spec: ModelSpec) -> Path | None:
    """Where ``spec``'s weights sit locally (package or cache), or None if not yet here."""
    if spec.weights is None:
        return None
    if spec.weights.url.startswith(BUNDLED):
        path = bundled_path(spec.weights.url[len(BUNDLED) :])
    else:
        path = weights_io.cache_dir() / spec.weights.filename
    return path if path.is_file() else None


def load_model(
    name: str | None = None,
    checkpoint: str | Path | None = None,
    *,
    pretrained: bool = True,
    device: str | torch.device = "cpu",
    progress: bool = True,
    mode: str = "exact",
) -> Sam:
    """Build a model and load its weights.

    Arguments:
      name (str | None): a registered name (see ``segany models``); with ``checkpoint``
        and no name, the architecture is recognised from the checkpoint's tensors.
      checkpoint (path | None): an official ``.pth``/``.pt`` state dict as published, or a
        ``.safetensors`` file. Without it the registered weights are downloaded into the
        cache (``$SEGANY_CACHE``, default ``~/.cache/segany``) and verified by sha256.
      pretrained (bool): False builds the model with random weights (``is_random`` True).
      device: where to put the model.
      progress (bool): show a progress bar while downloading.
      mode (str): "exact" (fp32, the official results) or "fast" (bf16; see
        :mod:`segany.engine.modes`).

    Returns:
      (Sam): the model in eval mode.
    """
    if not isinstance(mode, str) or mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if name is not None and not isinstance(name, str):
        raise InputError(f"name must be a registered model name (a str), not {name!r}")
    try:
        if device is not None:
            torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InputError(
            f"device must be a torch device such as 'cpu' or 'cuda:0', not {device!r}"
        ) from exc
    if checkpoint is not None:
        state_dict = weights_io.load_state_dict_file(checkpoint)
        spec = get_spec(name) if name is not None else infer_spec(state_dict, checkpoint)
        with skip_weight_init():  # every tensor is overwritten by the strict load below
            model = build_sam(spec.config)
        load_weights(model, state_dict, spec.name, str(checkpoint))
    else:
        spec = get_spec(name or DEFAULT_MODEL)
        if not pretrained:
            model = build_sam(spec.config)
        else:
            path = _weights_path(spec, progress)
            with skip_weight_init():
                model = build_sam(spec.config)
            load_weights(model, weights_io.load_state_dict_file(path), spec.name, str(path))
            model.weights_sha256 = spec.weights.sha256 if spec.weights else None
    model.name = spec.name
    return apply_mode(model.to(device).eval(), mode)


def bundled_asset(info: WeightsInfo | None, what: str, model: str) -> Path:
    """The verified path of a file shipped with the package for ``model`` (its ``what``).

    ``info`` None (nothing registered) or a file that is not bundled raises ``InputError``;
    a missing file or a sha256 mismatch raises ``CheckpointError``.
    """
    if info is None:
        raise InputError(f"model {model!r} has no registered {what}")
    if not info.url.startswith(BUNDLED):
        raise InputError(f"{what} of {model!r} is not bundled: {info.url}")
    path = bundled_path(info.url[len(BUNDLED) :])
    if not path.is_file():
        raise CheckpointError(f"the package is missing the {what} {path.name}")
    if info.sha256 and weights_io.sha256_file(path) != info.sha256:
        raise CheckpointError(f"{what} {path} fails its sha256 check")
    return path


def load_part(path: str | Path, build: Callable[[dict[str, torch.Tensor]], T], what: str) -> T:
    """``build(state_dict)`` from the file at ``path`` (safetensors or ``weights_only``);
    a file that is not such a part raises ``CheckpointError`` naming ``what``."""
    state_dict = weights_io.load_state_dict_file(path)
    try:
        return build(state_dict)
    except (ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is not a {what}: {str(exc).splitlines()[0]}") from None


def _weights_path(spec: ModelSpec, progress: bool) -> Path:
    if spec.weights is None:
        raise InputError(
            f"model {spec.name!r} has no published weights; pass checkpoint=PATH "
            "or pretrained=False"
        )
    found = cached_path(spec)
    if spec.weights.url.startswith(BUNDLED):
        if found is None:
            raise CheckpointError(f"the package is missing its bundled weights for {spec.name}")
        if spec.weights.sha256 and weights_io.sha256_file(found) != spec.weights.sha256:
            raise CheckpointError(f"bundled weights {found} fail their sha256 check")
        return found
    if found is not None:
        return found
    dest = weights_io.cache_dir() / spec.weights.filename
    return weights_io.download(
        spec.weights.url,
        dest,
        sha256=spec.weights.sha256,
        size=spec.weights.size,
        progress=progress,
    )


@functools.cache  # (a spec is frozen: its tensors' shapes never change)
def _shape_map(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = build_sam(spec.config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def infer_spec(state_dict: dict[str, torch.Tensor], source: object = "checkpoint") -> ModelSpec:
    """The registered model whose tensors (names and shapes) match ``state_dict``.

    Raises :class:`CheckpointError` naming the closest registered model and what differs.
    """
    given = {k: tuple(v.shape) for k, v in state_dict.items()}
    best: tuple[int, ModelSpec, dict[str, tuple[int, ...]]] | None = None
    for spec in list_models():
        expected = _shape_map(spec)
        if expected == given:
            return spec
        overlap = sum(1 for k, shape in given.items() if expected.get(k) == shape)
        if best is None or overlap > best[0]:
            best = (overlap, spec, expected)
    names = ", ".join(s.name for s in list_models())
    closest = ""
    if best is not None:
        closest = f"; closest is {best[1].name!r}: " + _mismatch(best[2], given)
    raise CheckpointError(f"{source} matches none of the registered models ({names}){closest}")


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN_KEYS])
    return shown + (f", ... ({len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else "")


def _mismatch(expected: dict[str, tuple[int, ...]], given: dict[str, tuple[int, ...]]) -> str:
    """What differs between two name -> shape maps ("" when they are equal)."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(given) if expected[k] != given[k])
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys ({_listing(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys ({_listing(unexpected)})")
    if mismatched:
        detail = [f"{k}: {given[k]} vs {expected[k]}" for k in mismatched]
        parts.append(f"{len(mismatched)} tensors of another shape ({_listing(detail)})")
    return "; ".join(parts)


def load_weights(model: Sam, state_dict: dict[str, torch.Tensor], name: str, source: str) -> None:
    """Load ``state_dict`` strictly into ``model``; any difference is one clear error.

    The message lists missing and unexpected keys and mismatched shapes, and names the
    registered model the checkpoint does belong to when it can tell.
    """
    own = model.state_dict()
    expected = {k: tuple(v.shape) for k, v in own.items()}
    given = {k: tuple(v.shape) for k, v in state_dict.items()}
    problems = _mismatch(expected, given)
    if problems:
        hint = ""
        matching = [s.name for s in list_models() if _shape_map(s) == given]
        if matching:
            hint = f"; it looks like a {matching[0]!r} checkpoint"
        raise CheckpointError(f"checkpoint {source} does not fit model {name!r}: {problems}{hint}")
    for key, tensor in state_dict.items():  # torch would cast silently, or fail obscurely
        if (
            tensor.is_meta
            or tensor.layout != torch.strided
            or tensor.is_complex()
            or (own[key].is_floating_point() and not tensor.is_floating_point())
        ):
            if tensor.is_meta:
                kind = "a meta tensor (it holds no data)"
            elif tensor.layout != torch.strided:
                kind = f"a {str(tensor.layout).removeprefix('torch.')} tensor"
            else:
                kind = f"of dtype {str(tensor.dtype).removeprefix('torch.')}"
            need = str(own[key].dtype).removeprefix("torch.")
            raise CheckpointError(
                f"checkpoint {source} does not fit model {name!r}: tensor {key} is {kind}; "
                f"the model needs dense {need} values"
            )
    try:
        model.load_state_dict(state_dict, strict=True)
    except (RuntimeError, TypeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()
        raise CheckpointError(
            f"checkpoint {source} does not fit model {name!r}: {reason[-1] if reason else exc!r}"
        ) from exc
    model.is_random = False
