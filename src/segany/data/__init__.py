"""Data handling: loading images into segany's canonical ``HxWx3`` ``uint8`` RGB form."""

from segany.data.images import MAX_IMAGE_PIXELS, load_image

__all__ = ["MAX_IMAGE_PIXELS", "load_image"]
