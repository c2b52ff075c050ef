"""segany: Segment Anything (SAM, MobileSAM) for everyone, fast on an ordinary CPU.

The public API::

    import segany
    model = segany.load_model("mobile_sam")          # or checkpoint="sam_vit_b_01ec64.pth"
    predictor = segany.Predictor(model)
    predictor.set_image("photo.jpg")
    result = predictor.predict(points=[[500, 375]], labels=[1])
    result.masks, result.scores
"""

from .errors import CheckpointError, DownloadError, InputError, SegAnyError
from .everything import MaskGenerator
from .loading import load_model
from .predictor import Prediction, Predictor
from .refiners import load_box_ranker, load_ranker, load_refiner
from .registry import get_spec, list_models
from .session import ClickSession

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ClickSession",
    "DownloadError",
    "InputError",
    "MaskGenerator",
    "Prediction",
    "Predictor",
    "SegAnyError",
    "__version__",
    "get_spec",
    "list_models",
    "load_model",
    "load_box_ranker",
    "load_ranker",
    "load_refiner",
]
