"""Training: SAM-style promptable training on generated scenes (and user data later)."""

from .config import TrainConfig
from .loop import export_weights, train

__all__ = ["TrainConfig", "export_weights", "train"]
