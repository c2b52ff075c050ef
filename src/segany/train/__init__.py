"""Training: SAM-style promptable training on generated scenes (and user data later)."""

from .config import TrainConfig
from .loop import train

__all__ = ["TrainConfig", "train"]
