"""The mask stages after the decoder: the refiner registered for a model's weights (or a
user's file), its graph-cut snapping and the ranker of the snapped masks."""

from __future__ import annotations

from pathlib import Path

from .loading import bundled_asset, load_part
from .models.graph_cut import GraphCut
from .models.ranker import MaskRanker
from .models.refiner import MaskRefiner
from .models.sam import Sam
from .registry import DEFAULT_MODEL, ModelSpec, get_spec

__all__ = [
    "load_ranker",
    "load_refiner",
    "registered_graph_cut",
    "registered_ranker",
    "registered_refiner",
]


def load_refiner(model_name: str | None = None, path: str | Path | None = None) -> MaskRefiner:
    """The refiner in ``path``, else the one registered for ``model_name``.

    Registered refiners ship in the package (sha256-verified); files are read as
    safetensors or with ``weights_only=True``.
    """
    if path is None:
        spec = get_spec(model_name or DEFAULT_MODEL)
        path = bundled_asset(spec.refiner, "mask refiner", spec.name)
    return load_part(path, MaskRefiner.from_state_dict, "mask refiner")


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


def load_ranker(model_name: str | None = None, path: str | Path | None = None) -> MaskRanker:
    """The mask ranker in ``path``, else the one registered for ``model_name`` (files read
    as in :func:`load_refiner`)."""
    if path is None:
        spec = get_spec(model_name or DEFAULT_MODEL)
        path = bundled_asset(spec.ranker, "mask ranker", spec.name)
    return load_part(path, MaskRanker.from_state_dict, "mask ranker")


def registered_ranker(model: object) -> MaskRanker | None:
    """The ranker trained with ``model``'s registered weights and stages, if any."""
    spec = _registered_spec(model)
    return load_ranker(spec.name) if spec is not None and spec.ranker is not None else None
