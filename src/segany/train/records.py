"""Training images from recorded annotations instead of generated scenes.

A data engine records images with the masks annotators accepted; fine-tuning on them is
the point of recording them. :class:`RecordSource` turns a list of such records into each
training step's :class:`~segany.train.targets.SceneTensors`, for
``segany.train.train(..., scenes=source)``:

* step ``s`` draws ``images_per_step`` records uniformly, with replacement, from
  ``numpy.random.default_rng([seed, s])``: a deterministic function of the step and the
  seed, so a resumed run sees the same images as an uninterrupted one;
* the boxes of the masks are their tight boxes (inclusive maxima, as a scene's);
* the masks have no hierarchy (``regions`` is None: the grouping loss, which needs one,
  gets no targets).

A record's tensors are computed once and kept (they are what the step reads, not copied).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..models.sam import Sam
from .config import TrainConfig
from .targets import SceneTensors, scene_to_tensors

__all__ = ["AnnotatedImage", "RecordSource", "mask_boxes"]


@dataclass(frozen=True, eq=False)
class AnnotatedImage:
    """One recorded image: ``image`` ``HxWx3`` uint8 RGB and ``masks`` ``NxHxW`` bool, the
    accepted masks of its objects (any subset of them; each non-empty)."""

    image: np.ndarray
    masks: np.ndarray


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """``Nx4`` float64 XYXY tight boxes (inclusive maxima) of ``NxHxW`` non-empty masks."""
    boxes = np.zeros((len(masks), 4), dtype=np.float64)
    for i, mask in enumerate(masks):
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        boxes[i] = cols[0], rows[0], cols[-1], rows[-1]
    return boxes


class RecordSource:
    """Each step's training images, drawn from ``records`` (a callable ``step -> list of
    SceneTensors``; see the module's docstring).

    Args:
        records: The recorded images, at least one.
        image_size: Side of the model's square input (``model.image_size``).
        low_res: Side of its low-res mask logits (``model.prompt_encoder.mask_input_size[0]``).
        images_per_step: Records drawn per step.
        seed: Seed of the draws.

    Raises:
        InputError: no records, a record without masks, an empty mask, or masks whose size
            is not the image's.
    """

    def __init__(
        self,
        records: Sequence[AnnotatedImage],
        *,
        image_size: int,
        low_res: int,
        images_per_step: int,
        seed: int = 0,
    ) -> None:
        if not records:
            raise InputError("a record source needs at least one annotated image")
        for index, record in enumerate(records):
            _check_record(index, record)
        if images_per_step < 1:
            raise InputError(f"images_per_step must be at least 1, got {images_per_step}")
        self.records = list(records)
        self.image_size = image_size
        self.low_res = low_res
        self.images_per_step = images_per_step
        self.seed = seed
        self._tensors: dict[int, SceneTensors] = {}

    @classmethod
    def for_model(
        cls, records: Sequence[AnnotatedImage], model: Sam, config: TrainConfig
    ) -> RecordSource:
        """A source for training ``model`` with ``config`` (its ``images_per_step`` and
        ``seed``)."""
        return cls(
            records,
            image_size=model.image_size,
            low_res=model.prompt_encoder.mask_input_size[0],
            images_per_step=config.images_per_step,
            seed=config.seed,
        )

    def indices(self, step: int) -> list[int]:
        """The records drawn at ``step`` (with replacement)."""
        rng = np.random.default_rng([self.seed, step])
        return [int(i) for i in rng.integers(len(self.records), size=self.images_per_step)]

    def __call__(self, step: int) -> list[SceneTensors]:
        return [self.tensors(index) for index in self.indices(step)]

    def tensors(self, index: int) -> SceneTensors:
        """Record ``index`` in the model's frame (computed on first use, then kept)."""
        if index not in self._tensors:
            record = self.records[index]
            masks = np.asarray(record.masks, dtype=bool)
            self._tensors[index] = scene_to_tensors(
                record.image, masks, mask_boxes(masks), self.image_size, self.low_res
            )
        return self._tensors[index]


def _check_record(index: int, record: AnnotatedImage) -> None:
    """``InputError`` unless record ``index`` is an HxWx3 uint8 image with NxHxW masks,
    N >= 1, none empty."""
    image, masks = np.asarray(record.image), np.asarray(record.masks)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"record {index}: the image must be HxWx3 uint8, got {image.shape}")
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        raise InputError(
            f"record {index}: masks must be NxHxW with the image's size {image.shape[:2]}, "
            f"got {masks.shape}"
        )
    if len(masks) == 0:
        raise InputError(f"record {index} has no masks")
    if not masks.reshape(len(masks), -1).any(axis=1).all():
        raise InputError(f"record {index} has an empty mask")
