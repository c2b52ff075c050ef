"""Training: SAM-style promptable training on generated scenes or recorded annotations."""

from .config import TrainConfig
from .loop import export_weights, train
from .records import AnnotatedImage, RecordSource

__all__ = ["AnnotatedImage", "RecordSource", "TrainConfig", "export_weights", "train"]
