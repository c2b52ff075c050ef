"""Opt-in mask stages after the decoder, trained for the weights they serve.

segany's :class:`~segany.predictor.Predictor` answers with what the network computes.
The stages here change those answers, for weights whose masks need help (the bundled demo
model's): a colour-model refiner of the low-res logits, graph-cut snapping to colour
edges, rankers of the snapped masks and clicks answered on zoomed crops. They wrap a
plain predictor::

    import segany
    from segany import refine

    model = segany.load_model()                      # the bundled demo model
    predictor = refine.StagedPredictor(segany.Predictor(model), refine.registered_stages(model))
    predictor.set_image("scene.png")
    result = predictor.predict(points=[[120, 80]], labels=[1])

Each registered entry names the weights file its stages were trained on (its sha256):
:func:`registered_stages` gives a model loaded with those weights its stages, and refuses
any other. Stages trained for weights of your own load from a stages file
(:func:`read_stages_file`); ``segany train refiner`` and ``segany train ranker`` train them.
"""

from .graph_cut import GraphCut
from .predictor import StagedPredictor, StageView
from .ranker import MaskRanker, RankerConfig
from .refiner import MaskRefiner, RefinerConfig
from .registry import (
    StageSpec,
    get_stage_spec,
    list_stage_specs,
    load_box_ranker,
    load_ranker,
    load_refiner,
    register_stages,
    registered_stages,
)
from .stages import STAGE_NAMES, Stages, read_stages_file
from .zoom import ClickZoom

__all__ = [
    "STAGE_NAMES",
    "ClickZoom",
    "GraphCut",
    "MaskRanker",
    "MaskRefiner",
    "RankerConfig",
    "RefinerConfig",
    "StageSpec",
    "StageView",
    "StagedPredictor",
    "Stages",
    "get_stage_spec",
    "list_stage_specs",
    "load_box_ranker",
    "load_ranker",
    "load_refiner",
    "read_stages_file",
    "register_stages",
    "registered_stages",
]
