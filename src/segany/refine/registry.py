"""The stages trained for published weights, keyed by the weights' sha256.

A stage fits the weights it was trained on, not an architecture: a refiner trained on
``segany_shapes``'s bundled weights is no use to the same network fine-tuned. So an entry
names the weights file (its sha256) and the stage files trained on it;
:func:`registered_stages` finds the entry of a model that :func:`segany.load_model`
filled with those weights (``Sam.weights_sha256``), or of a registered model's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..loading import bundled_asset
from ..models.sam import Sam
from ..registry import DEFAULT_MODEL, WeightsInfo, bundled_weights, get_spec
from .graph_cut import GraphCut
from .ranker import MaskRanker
from .refiner import MaskRefiner
from .stages import Stages, read_ranker, read_refiner
from .zoom import ClickZoom

__all__ = [
    "StageSpec",
    "get_stage_spec",
    "list_stage_specs",
    "load_box_ranker",
    "load_ranker",
    "load_refiner",
    "register_stages",
    "registered_stages",
]


@dataclass(frozen=True)
class StageSpec:
    """The stages trained on one weights file.

    model: the registered model whose weights they are; weights_sha256: that file's.
    refiner, ranker, box_ranker: the stage files (bundled in the package) or None;
    graph_cut: snap the masks to colour edges; zoom: the crops a click is also answered on
    (fractions of the image's side; empty: none).
    """

    model: str
    weights_sha256: str
    refiner: WeightsInfo | None = None
    graph_cut: bool = False
    ranker: WeightsInfo | None = None
    box_ranker: WeightsInfo | None = None
    zoom: tuple[float, ...] = ()


_STAGES: dict[str, StageSpec] = {}  # by weights_sha256


def register_stages(spec: StageSpec) -> StageSpec:
    """Add ``spec``; weights that already have stages raise ``ValueError``."""
    if spec.weights_sha256 in _STAGES:
        raise ValueError(f"the weights {spec.weights_sha256[:12]}… already have stages")
    _STAGES[spec.weights_sha256] = spec
    return spec


def list_stage_specs() -> list[StageSpec]:
    """Every registered entry, in registration order."""
    return list(_STAGES.values())


def get_stage_spec(model: Sam | str) -> StageSpec | None:
    """The entry of ``model``'s weights: a :class:`Sam` by the weights it holds, a name by
    its registered weights; None when there is none (or a model of random or user weights)."""
    if isinstance(model, str):
        weights = get_spec(model).weights
        sha256 = weights.sha256 if weights is not None else None
    else:
        sha256 = getattr(model, "weights_sha256", None)
    return _STAGES.get(sha256) if sha256 is not None else None


def registered_stages(model: Sam | str) -> Stages:
    """The :class:`Stages` trained on ``model``'s weights (a :class:`Sam`, or a registered
    name; see :func:`get_stage_spec`); ``InputError`` when it has none."""
    spec = get_stage_spec(model)
    if spec is None:
        name = model if isinstance(model, str) else model.name
        raise InputError(
            f"no mask stages are registered for the weights of model {name!r} (they exist "
            f"for {', '.join(s.model for s in _STAGES.values()) or 'no model'}, loaded "
            "with its published weights); build Stages(...) from files of your own"
        )
    return Stages(
        refiner=load_refiner(spec.model) if spec.refiner is not None else None,
        graph_cut=GraphCut() if spec.graph_cut else None,
        ranker=load_ranker(spec.model) if spec.ranker is not None else None,
        box_ranker=load_box_ranker(spec.model) if spec.box_ranker is not None else None,
        zoom=ClickZoom(spec.zoom) if spec.zoom else None,
    )


def _bundled(field: str, what: str, model_name: str | None) -> Path:
    """The verified bundled file named in ``field`` of the stages of ``model_name``."""
    name = get_spec(model_name or DEFAULT_MODEL).name
    spec = get_stage_spec(name)
    return bundled_asset(getattr(spec, field) if spec else None, what, name)


def load_refiner(model_name: str | None = None, path: str | Path | None = None) -> MaskRefiner:
    """The refiner in ``path``, else the one registered for ``model_name``'s weights.

    Registered refiners ship in the package (sha256-verified); files are read as
    safetensors or with ``weights_only=True``.
    """
    return read_refiner(
        path if path is not None else _bundled("refiner", "mask refiner", model_name)
    )


def load_ranker(model_name: str | None = None, path: str | Path | None = None) -> MaskRanker:
    """The click ranker in ``path``, else the one registered for ``model_name``'s weights
    (files read as in :func:`load_refiner`)."""
    return read_ranker(path if path is not None else _bundled("ranker", "mask ranker", model_name))


def load_box_ranker(model_name: str | None = None, path: str | Path | None = None) -> MaskRanker:
    """The box ranker in ``path``, else the one registered for ``model_name``'s weights
    (files read as in :func:`load_refiner`)."""
    chosen = path if path is not None else _bundled("box_ranker", "box ranker", model_name)
    return read_ranker(chosen, boxes=True)


# The bundled model's stages, trained on its frozen weights (docs/training.md): the
# colour-model refiner (segany train refiner), graph-cut snapping, the click ranker
# (segany train ranker --scenes 500), the box-cut ranker (segany train ranker --prompts
# box_cut --scenes 400) and crops of 0.5 and 0.2 of the image's side.
register_stages(
    StageSpec(
        model="segany_shapes",
        weights_sha256="726ee16886643513c8e2734bb6adff9279d6e82504fb7ffa7a13c7f38d1ced3d",
        refiner=bundled_weights(
            "segany_shapes_refiner.safetensors",
            "ecb479b54fdbd5f4581d6bf9b87563348a23eeecd2ed4ae9f72f7747e67420cc",
            255_332,
        ),
        graph_cut=True,
        ranker=bundled_weights(
            "segany_shapes_ranker.safetensors",
            "8e782af0f5ee369df91738b32d29a0efe2c9f5775a58d8d896631f7de36688a2",
            26_252,
        ),
        box_ranker=bundled_weights(
            "segany_shapes_box_ranker.safetensors",
            "8713399a71929c7fde5e4897d2f4d2a224c29e38881ea832fa701eebc5d5fed7",
            26_252,
        ),
        zoom=(0.5, 0.2),
    )
)
