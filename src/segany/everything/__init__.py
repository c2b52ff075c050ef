"""SegEvery: automatic mask generation ("segment everything") from a grid of point prompts.

``MaskGenerator(model, **options)`` takes the options of the official
``SamAutomaticMaskGenerator`` and returns the same records; see :mod:`.generator`.
"""

from .exports import coco_instances, label_map, sa1b_dict
from .generator import OUTPUT_MODES, MaskGenerator

__all__ = ["OUTPUT_MODES", "MaskGenerator", "coco_instances", "label_map", "sa1b_dict"]
