"""Data handling: loading images into segany's canonical ``HxWx3`` ``uint8`` RGB form,
generated training scenes, COCO RLE and SA-1B-style folders."""

from segany.data.images import MAX_IMAGE_PIXELS, load_image
from segany.data.rle import mask_to_rle, rle_to_mask
from segany.data.sa1b import read_sa1b_folder, write_sa1b_folder
from segany.data.scenes import (
    EVAL_BASE_SEED,
    TRAIN_BASE_SEED,
    Scene,
    SceneConfig,
    SceneDataset,
    generate_scene,
    scene_seed,
)

__all__ = [
    "EVAL_BASE_SEED",
    "MAX_IMAGE_PIXELS",
    "TRAIN_BASE_SEED",
    "Scene",
    "SceneConfig",
    "SceneDataset",
    "generate_scene",
    "load_image",
    "mask_to_rle",
    "read_sa1b_folder",
    "rle_to_mask",
    "scene_seed",
    "write_sa1b_folder",
]
