"""Loading object-proposal heads: the one registered for a model, or a user's file."""

from __future__ import annotations

from pathlib import Path

from . import weights as weights_io
from .errors import CheckpointError, InputError
from .loading import BUNDLED, bundled_path
from .models.prompt_head import PromptHead
from .registry import DEFAULT_MODEL, get_spec

__all__ = ["load_prompt_head"]


def load_prompt_head(model_name: str | None = None, path: str | Path | None = None) -> PromptHead:
    """The prompt head in ``path``, else the one registered for ``model_name``.

    Registered heads ship in the package (sha256-verified); files are read as safetensors
    or with ``weights_only=True``.
    """
    if path is None:
        spec = get_spec(model_name or DEFAULT_MODEL)
        info = spec.prompt_head
        if info is None:
            raise InputError(
                f"model {spec.name!r} has no trained prompt head; train one with "
                "'segany train prompt-head' and pass head:PATH, or use yolo:PATH or boxes:FILE"
            )
        if not info.url.startswith(BUNDLED):
            raise InputError(f"prompt head of {spec.name!r} is not bundled: {info.url}")
        path = bundled_path(info.url[len(BUNDLED) :])
        if not path.is_file():
            raise CheckpointError(f"the package is missing the prompt head {path.name}")
        if info.sha256 and weights_io.sha256_file(path) != info.sha256:
            raise CheckpointError(f"prompt head {path} fails its sha256 check")
    state_dict = weights_io.load_state_dict_file(path)
    try:
        return PromptHead.from_state_dict(state_dict)
    except (ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is not a prompt head: {str(exc).splitlines()[0]}") from None
