"""Network definitions: image encoders, prompt encoder, mask decoder, the composed SAM."""

from .sam import Sam, SamConfig, build_sam
from .tiny_vit import TinyViT, TinyViTConfig
from .vit import ImageEncoderViT, ViTConfig

__all__ = [
    "ImageEncoderViT",
    "Sam",
    "SamConfig",
    "TinyViT",
    "TinyViTConfig",
    "ViTConfig",
    "build_sam",
]
