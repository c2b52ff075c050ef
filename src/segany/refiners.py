"""The mask stages after the decoder: the refiner registered for a model's weights (or a
user's file), its graph-cut snapping, the rankers of the snapped masks (one for clicks,
one for boxes) and the crops a click is also answered on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from .loading import bundled_asset, load_part
from .models.graph_cut import GraphCut
from .models.ranker import BOX_KINDS, MaskRanker
from .models.refiner import MaskRefiner
from .models.sam import Sam
from .registry import DEFAULT_MODEL, ModelSpec, get_spec
from .zoom import ClickZoom

T = TypeVar("T")

__all__ = [
    "load_box_ranker",
    "load_ranker",
    "load_refiner",
    "registered_box_ranker",
    "registered_graph_cut",
    "registered_ranker",
    "registered_zoom",
    "resolve_stage",
    "registered_refiner",
]


def load_refiner(model_name: str | None = None, path: str | Path | None = None) -> MaskRefiner:
    """The refiner in ``path``, else the one registered for ``model_name``.

    Registered refiners ship in the package (sha256-verified); files are read as
    safetensors or with ``weights_only=True``.
    """
    return _load("refiner", "mask refiner", MaskRefiner.from_state_dict, model_name, path)


def _load(
    field: str,
    what: str,
    build: Callable[[dict[str, torch.Tensor]], T],
    model_name: str | None,
    path: str | Path | None,
) -> T:
    """``build`` from the file at ``path``, else from the bundled file the registry entry
    of ``model_name`` names in its ``field`` (its ``what``, for errors)."""
    if path is None:
        spec = get_spec(model_name or DEFAULT_MODEL)
        path = bundled_asset(getattr(spec, field), what, spec.name)
    return load_part(path, build, what)


def _registered_spec(model: object) -> ModelSpec | None:
    """The registry entry of a :class:`Sam` that :func:`segany.load_model` filled with its
    registered weights (the stages registered beside them were trained on them); else None."""
    if not isinstance(model, Sam) or not model.registered_weights:
        return None
    return get_spec(model.name)


def registered_refiner(model: object) -> MaskRefiner | None:
    """The refiner trained with ``model``'s registered weights, if one is registered."""
    spec = _registered_spec(model)
    return load_refiner(spec.name) if spec is not None and spec.refiner is not None else None


def registered_graph_cut(model: object) -> GraphCut | None:
    """Graph-cut snapping, for a :class:`Sam` with registered weights whose registry entry
    asks for it (masks that do not follow colour edges by themselves); else None."""
    spec = _registered_spec(model)
    return GraphCut() if spec is not None and spec.graph_cut else None


def registered_zoom(model: object) -> ClickZoom | None:
    """The crops a click on ``model`` is also answered on, for a :class:`Sam` with
    registered weights whose registry entry names them (segany.zoom); else None."""
    spec = _registered_spec(model)
    return ClickZoom(spec.zoom) if spec is not None and spec.zoom else None


def load_ranker(model_name: str | None = None, path: str | Path | None = None) -> MaskRanker:
    """The mask ranker in ``path``, else the one registered for ``model_name`` (files read
    as in :func:`load_refiner`)."""
    return _load("ranker", "mask ranker", _ranker_of("masks", "clicks"), model_name, path)


def registered_ranker(model: object) -> MaskRanker | None:
    """The ranker trained with ``model``'s registered weights and stages, if any."""
    spec = _registered_spec(model)
    return load_ranker(spec.name) if spec is not None and spec.ranker is not None else None


def load_box_ranker(model_name: str | None = None, path: str | Path | None = None) -> MaskRanker:
    """The box ranker in ``path``, else the one registered for ``model_name`` (a
    :class:`MaskRanker` trained on box prompts; files read as in :func:`load_refiner`)."""
    return _load("box_ranker", "box ranker", _ranker_of(*BOX_KINDS), model_name, path)


def _ranker_of(*kinds: str) -> Callable[[dict[str, torch.Tensor]], MaskRanker]:
    """A builder of :class:`MaskRanker` that refuses rankers of other kinds."""

    def build(tensors: dict[str, torch.Tensor]) -> MaskRanker:
        ranker = MaskRanker.from_state_dict(tensors)
        if ranker.config.kind not in kinds:
            raise ValueError(f"it is a {ranker.config.kind!r} ranker")
        return ranker

    return build


def registered_box_ranker(model: object) -> MaskRanker | None:
    """The box ranker trained with ``model``'s registered weights and stages, if any."""
    spec = _registered_spec(model)
    return load_box_ranker(spec.name) if spec is not None and spec.box_ranker else None


def resolve_stage(
    value: T | str | None,
    name: str,
    kind: str,
    registered: Callable[[object], T | None],
    model: object,
) -> T | None:
    """A mask-stage argument resolved: the stage given, None, or for "auto" the one
    ``registered`` finds for ``model``; any other string raises ``ValueError``."""
    if not isinstance(value, str):
        return value
    if value != "auto":
        raise ValueError(f"{name} must be a {kind}, 'auto' or None; got {value!r}")
    return registered(model)
