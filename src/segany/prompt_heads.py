"""Loading object-proposal heads: the one registered for a model, or a user's file."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError
from .loading import bundled_asset, load_part
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
        if spec.prompt_head is None:
            raise InputError(
                f"model {spec.name!r} has no trained prompt head; train one with "
                "'segany train prompt-head' and pass head:PATH, or use yolo:PATH or boxes:FILE"
            )
        path = bundled_asset(spec.prompt_head, "prompt head", spec.name)
    return load_part(path, PromptHead.from_state_dict, "prompt head")
