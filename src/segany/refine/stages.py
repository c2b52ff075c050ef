"""Which mask stages run after the decoder: :class:`Stages`, and a stages file.

A stages file (JSON) names the stages trained for weights of your own, paths relative
to the file::

    {"refiner": "refiner.safetensors", "graph_cut": true,
     "ranker": "ranker.safetensors", "box_ranker": "box_ranker.safetensors",
     "zoom": [0.5, 0.2]}

Every key is optional; a missing one is a stage that does not run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..errors import CheckpointError, InputError
from ..loading import load_part
from .graph_cut import GraphCut
from .ranker import BOX_KINDS, MaskRanker
from .refiner import MaskRefiner
from .zoom import ClickZoom

STAGE_NAMES = ("refiner", "graph_cut", "ranker", "box_ranker", "zoom")


@dataclass(frozen=True)
class Stages:
    """The stages a :class:`~segany.refine.StagedPredictor` runs (None: not run).

    refiner: corrects every low-res mask from the pixels (:mod:`.refiner`; predicted IoU
      unchanged).
    graph_cut: snaps every full-size mask to the image's colour edges (:mod:`.graph_cut`).
    ranker: with graph cut on and 3 masks per prompt, scores a click's snapped masks
      (kind "clicks" or "masks"; :mod:`.ranker`), so that the best-scored is the one most
      likely right after snapping.
    box_ranker: the same for prompts that are boxes alone (kind "boxes" or "box_cut": a
      box-cut ranker answers with the box's own cut as its second candidate).
    zoom: the crops a click is also answered on (:mod:`.zoom`).
    """

    refiner: MaskRefiner | None = None
    graph_cut: GraphCut | None = None
    ranker: MaskRanker | None = None
    box_ranker: MaskRanker | None = None
    zoom: ClickZoom | None = None

    def __post_init__(self) -> None:
        kinds = (MaskRefiner, GraphCut, MaskRanker, MaskRanker, ClickZoom)
        for name, kind in zip(STAGE_NAMES, kinds, strict=True):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise ValueError(f"{name} must be a {kind.__name__} or None, got {value!r}")
        if self.ranker is not None and self.ranker.config.kind in BOX_KINDS:
            raise ValueError("ranker is a box ranker (it reads a box): pass it as box_ranker")
        if self.box_ranker is not None and self.box_ranker.config.kind not in BOX_KINDS:
            given = self.box_ranker.config.kind
            raise ValueError(f"box_ranker is a {given} ranker, not a box ranker: pass it as ranker")

    def without(self, *names: str) -> Stages:
        """These stages less the ones in ``names`` (of :data:`STAGE_NAMES`)."""
        unknown = set(names) - set(STAGE_NAMES)
        if unknown:
            raise ValueError(f"unknown stages {sorted(unknown)}; stages are {STAGE_NAMES}")
        cleared: dict[str, None] = dict.fromkeys(names)
        return replace(self, **cleared)

    @property
    def names(self) -> tuple[str, ...]:
        """The stages that run, in pipeline order (a ranker counts only with graph cut)."""
        ranks = self.graph_cut is not None
        on = {
            "refiner": self.refiner is not None,
            "graph_cut": ranks,
            "ranker": ranks and self.ranker is not None,
            "box_ranker": ranks and self.box_ranker is not None,
            "zoom": self.zoom is not None,
        }
        return tuple(name for name in STAGE_NAMES if on[name])

    def describe(self) -> str:
        """The stages that run, for a person ("refiner + graph cut + …" or "none")."""
        return " + ".join(name.replace("_", " ") for name in self.names) or "none"


def read_stages_file(path: str | Path) -> Stages:
    """The :class:`Stages` a stages file names (module doc); a file that is not one, or
    names a missing or wrong file, raises ``InputError`` (``CheckpointError`` for a
    stage file that is not that stage)."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not a readable stages file (JSON): {exc}") from None
    if not isinstance(entries, dict) or set(entries) - set(STAGE_NAMES):
        raise InputError(f"{path}: a stages file is a JSON object with keys {STAGE_NAMES}")

    def part(name: str) -> Path | None:
        value = entries.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not (path.parent / value).is_file():
            raise InputError(f"{path}: {name} {value!r} is not a file beside it")
        return path.parent / value

    refiner, ranker, box_ranker = part("refiner"), part("ranker"), part("box_ranker")
    zoom = entries.get("zoom")
    try:
        return Stages(
            refiner=read_refiner(refiner) if refiner else None,
            graph_cut=GraphCut() if entries.get("graph_cut") else None,
            ranker=read_ranker(ranker) if ranker else None,
            box_ranker=read_ranker(box_ranker, boxes=True) if box_ranker else None,
            zoom=ClickZoom(tuple(float(w) for w in zoom)) if zoom else None,
        )
    except CheckpointError:
        raise  # (a stage file that is not its stage, as the docstring says)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: {exc}") from None


def read_refiner(path: str | Path) -> MaskRefiner:
    """The :class:`MaskRefiner` in the file at ``path`` (safetensors, or a torch file read
    with ``weights_only=True``); another file raises ``CheckpointError``."""
    return load_part(path, MaskRefiner.from_state_dict, "mask refiner")


def read_ranker(path: str | Path, boxes: bool = False) -> MaskRanker:
    """The :class:`MaskRanker` in the file at ``path`` (read as :func:`read_refiner`): a
    click or mask ranker, or with ``boxes`` a box ranker; another kind raises
    ``CheckpointError``."""
    kinds = BOX_KINDS if boxes else ("masks", "clicks")
    what = "box ranker" if boxes else "mask ranker"
    return load_part(path, _ranker_of(*kinds), what)


def _ranker_of(*kinds: str) -> Callable[[dict[str, torch.Tensor]], MaskRanker]:
    """A builder of :class:`MaskRanker` that refuses rankers of other kinds."""

    def build(tensors: dict[str, torch.Tensor]) -> MaskRanker:
        ranker = MaskRanker.from_state_dict(tensors)
        if ranker.config.kind not in kinds:
            raise ValueError(f"it is a {ranker.config.kind!r} ranker")
        return ranker

    return build
