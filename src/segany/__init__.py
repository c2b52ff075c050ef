"""segany: Segment Anything (SAM, MobileSAM) for everyone, fast on an ordinary CPU.

The public API::

    import segany
    model = segany.load_model("mobile_sam")          # or checkpoint="sam_vit_b_01ec64.pth"
    predictor = segany.Predictor(model)
    predictor.set_image("photo.jpg")
    result = predictor.predict(points=[[500, 375]], labels=[1])
    result.masks, result.scores

The opt-in mask stages of the bundled demo model live in :mod:`segany.refine`.
"""

from typing import Any

from .errors import CheckpointError, DownloadError, InputError, NoImageError, SegAnyError
from .everything import MaskGenerator
from .loading import load_model
from .predictor import Prediction, Predictor
from .registry import get_spec, list_models
from .session import ClickSession

__version__ = "0.4.0"

__all__ = [
    "CheckpointError",
    "ClickSession",
    "DownloadError",
    "InputError",
    "MaskGenerator",
    "NoImageError",
    "Prediction",
    "Predictor",
    "SegAnyError",
    "__version__",
    "get_spec",
    "list_models",
    "load_model",
]


def _moved(name: str) -> Any:
    """A stand-in for a function that moved to :mod:`segany.refine` in 0.2.0: calling it
    raises a ``TypeError`` that names its new place."""

    def moved(*args: object, **kwargs: object) -> None:
        raise TypeError(
            f"segany.{name} moved in segany 0.2.0: use segany.refine.{name} (the mask "
            "stages are an opt-in layer around the Predictor now)"
        )

    moved.__name__ = moved.__qualname__ = name
    return moved


load_refiner = _moved("load_refiner")
load_ranker = _moved("load_ranker")
load_box_ranker = _moved("load_box_ranker")
