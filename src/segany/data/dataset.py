"""Format-neutral dataset records: images, their instance masks and the label set.

The annotation server turns its database rows into these records; the writers of
:mod:`segany.data.coco` and :mod:`segany.data.export` turn them into files, and
:func:`segany.data.coco.read_coco` turns a COCO file back into them. Keeping one neutral
form means every format is written from (and checked against) the same data.

Masks are held as compressed COCO RLE (``{"size": [H, W], "counts": str}``, see
:mod:`segany.data.rle`), so a large dataset stays small in memory; ``bbox`` is XYWH in
pixels with ``w = x_max - x + 1`` (as pycocotools' ``toBbox``), ``area`` the number of set
pixels. A :class:`Dataset` checks its own consistency when built, so a writer never has to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from segany.data.rle import mask_to_rle, rle_to_mask
from segany.errors import InputError

__all__ = [
    "Dataset",
    "DatasetAnnotation",
    "DatasetImage",
    "annotation_from_mask",
    "mask_bbox",
]


@dataclass(frozen=True)
class DatasetImage:
    """One image of a dataset: its id, file name (as stored, maybe with folders) and size."""

    id: int
    file_name: str
    width: int
    height: int


@dataclass(frozen=True)
class DatasetAnnotation:
    """One instance mask of an image.

    Attributes:
        id: Unique over the dataset.
        image_id: The :attr:`DatasetImage.id` of its image.
        category_id: The ``"id"`` of one of the dataset's categories.
        rle: Compressed COCO RLE of the ``HxW`` mask (``counts`` a ``str``).
        bbox: ``(x, y, w, h)`` in pixels, ``w = x_max - x + 1``; all 0 for an empty mask.
        area: Number of set pixels.
        predicted_iou: The model's own quality estimate, when a model made the mask.
        stability_score: SAM's stability score, when known.
        extra: Free-form, JSON-like provenance (stage, prompts, model, weights sha256, ...);
            COCO files keep it under each annotation's ``"segany"`` key.
    """

    id: int
    image_id: int
    category_id: int
    rle: dict[str, Any]
    bbox: tuple[float, float, float, float]
    area: int
    predicted_iou: float | None = None
    stability_score: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def mask(self) -> npt.NDArray[np.bool_]:
        """The decoded ``HxW`` bool mask."""
        return rle_to_mask(self.rle)


@dataclass(frozen=True)
class Dataset:
    """Images, their annotations and the categories, checked for consistency when built.

    Attributes:
        images: Unique ids.
        annotations: Unique ids; each names an existing image and category, and its
            RLE has its image's ``[height, width]``.
        categories: COCO category dicts, each with a unique int ``"id"`` and a str
            ``"name"`` (``"supercategory"`` optional). Their order is the class order of
            formats that number classes (YOLO).

    Raises:
        InputError: Any of the above does not hold (see :meth:`check`).
    """

    images: tuple[DatasetImage, ...]
    annotations: tuple[DatasetAnnotation, ...]
    categories: tuple[dict[str, Any], ...]

    def __post_init__(self) -> None:
        for name in ("images", "annotations", "categories"):  # lists are welcome too
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self.check()

    def check(self) -> None:
        """Raise :class:`InputError` naming the first inconsistency found, if any."""
        images: dict[int, DatasetImage] = {}
        for image in self.images:
            if image.id in images:
                raise InputError(f"image id {image.id} occurs twice")
            if image.width <= 0 or image.height <= 0:
                raise InputError(
                    f"image {image.id} ({image.file_name}) has size {image.width}x"
                    f"{image.height} (WxH); both must be positive"
                )
            images[image.id] = image
        category_ids: set[int] = set()
        for position, category in enumerate(self.categories):
            cid = category.get("id") if isinstance(category, Mapping) else None
            name = category.get("name") if isinstance(category, Mapping) else None
            if not isinstance(cid, int) or isinstance(cid, bool) or not isinstance(name, str):
                raise InputError(
                    f"category {position} needs an int 'id' and a str 'name'; got {category!r:.80}"
                )
            if cid in category_ids:
                raise InputError(f"category id {cid} occurs twice")
            category_ids.add(cid)
        annotation_ids: set[int] = set()
        for ann in self.annotations:
            if ann.id in annotation_ids:
                raise InputError(f"annotation id {ann.id} occurs twice")
            annotation_ids.add(ann.id)
            owner = images.get(ann.image_id)
            if owner is None:
                raise InputError(
                    f"annotation {ann.id} refers to image {ann.image_id}, which the dataset "
                    "does not have"
                )
            if ann.category_id not in category_ids:
                raise InputError(
                    f"annotation {ann.id} has category {ann.category_id}, which is not among "
                    f"the dataset's categories {sorted(category_ids)}"
                )
            if not isinstance(ann.rle, Mapping) or not isinstance(ann.rle.get("counts"), str):
                raise InputError(f"annotation {ann.id} needs a compressed RLE (str counts)")
            size = ann.rle.get("size")
            if not isinstance(size, list | tuple) or list(size) != [owner.height, owner.width]:
                raise InputError(
                    f"annotation {ann.id} has a mask of size {size} (HxW), but its image "
                    f"{owner.id} ({owner.file_name}) is {owner.height}x{owner.width}"
                )

    def annotations_by_image(self) -> dict[int, list[DatasetAnnotation]]:
        """Image id -> its annotations in dataset order; every image has an entry."""
        grouped: dict[int, list[DatasetAnnotation]] = {image.id: [] for image in self.images}
        for ann in self.annotations:
            grouped[ann.image_id].append(ann)
        return grouped

    def category_names(self) -> dict[int, str]:
        """Category id -> name."""
        return {int(c["id"]): str(c["name"]) for c in self.categories}


def mask_bbox(mask: npt.ArrayLike) -> tuple[float, float, float, float]:
    """``(x, y, w, h)`` of the set pixels of an ``HxW`` mask, ``w = x_max - x + 1``.

    Returns ``(0, 0, 0, 0)`` for an empty mask, as pycocotools' ``toBbox`` does.
    """
    array = np.asarray(mask, dtype=bool)
    cols = np.flatnonzero(array.any(axis=0))
    rows = np.flatnonzero(array.any(axis=1))
    if cols.size == 0:
        return (0.0, 0.0, 0.0, 0.0)
    x, y = int(cols[0]), int(rows[0])
    return (float(x), float(y), float(cols[-1] - x + 1), float(rows[-1] - y + 1))


def annotation_from_mask(
    id: int,
    image_id: int,
    category_id: int,
    mask: npt.ArrayLike,
    **kw: Any,
) -> DatasetAnnotation:
    """Build an annotation from an ``HxW`` mask, computing its RLE, bbox and area.

    Args:
        id: Annotation id.
        image_id: Id of the annotation's image.
        category_id: Id of its category.
        mask: ``HxW`` array; non-zero means set.
        **kw: ``predicted_iou``, ``stability_score`` and ``extra`` (see
            :class:`DatasetAnnotation`).

    Raises:
        InputError: ``mask`` is not two-dimensional.
    """
    array = np.asarray(mask)
    if array.ndim != 2:
        raise InputError(f"a mask must be HxW (two-dimensional); got shape {array.shape}")
    binary = array.astype(bool, copy=False)
    return DatasetAnnotation(
        id=int(id),
        image_id=int(image_id),
        category_id=int(category_id),
        rle=mask_to_rle(binary),
        bbox=mask_bbox(binary),
        area=int(np.count_nonzero(binary)),
        **kw,
    )
