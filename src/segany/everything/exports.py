"""Export formats for "segment everything" records: SA-1B JSON, COCO instances and PNG maps.

All functions here are pure: they take the records of :meth:`MaskGenerator.generate`
(any ``output_mode``) or the SA-1B dicts built from them, and return new dicts or arrays.
Writing files is left to :mod:`segany.everything.batch`.

* :func:`sa1b_dict` -- one image in the layout of the SA-1B dataset's per-image JSON:
  ``{"image": {image_id, file_name, width, height}, "annotations": [...]}``, each
  annotation with ``id``, ``segmentation`` (COCO RLE, ``counts`` a compressed string),
  ``bbox`` (XYWH), ``area``, ``predicted_iou``, ``stability_score``, ``crop_box`` and
  ``point_coords``. Annotation ids count from 1 within each image, in record order.
* :func:`coco_instances` -- the SA-1B dicts of many images as one COCO *instances* dict with
  a single class-agnostic category ``{"id": 1, "name": "object"}``, ``iscrowd`` 0, RLE
  segmentations and ``score`` = ``predicted_iou``; annotation ids count from 1 over all
  images in the order given, so they are unique.
* :func:`label_map` -- an instance-id map: pixel value ``k`` is annotation id ``k`` (0 is
  background). Masks may overlap; they are painted largest first, so a smaller mask lying on
  a larger one stays visible and each pixel shows the smallest mask covering it.
* :func:`overlay` -- the image with the masks blended in, in the same painting order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from segany.data.rle import encode_counts, mask_to_rle, rle_area, rle_to_mask
from segany.errors import InputError
from segany.visualize import overlay_masks

__all__ = [
    "COCO_CATEGORY",
    "coco_instances",
    "label_map",
    "overlay",
    "paint_order",
    "sa1b_dict",
    "to_coco_rle",
]

#: The single class-agnostic category of :func:`coco_instances`.
COCO_CATEGORY: dict[str, Any] = {"id": 1, "name": "object", "supercategory": "object"}


def to_coco_rle(segmentation: Any) -> dict[str, Any]:
    """Return a segmentation as a COCO RLE with ``counts`` as a compressed string.

    Args:
        segmentation: An ``HxW`` mask (``binary_mask`` output) or an RLE dict with
            ``counts`` as a list of ints (``uncompressed_rle``), a string or bytes
            (``coco_rle``, pycocotools).

    Raises:
        InputError: The segmentation is neither a 2-D array nor an RLE dict.
    """
    if isinstance(segmentation, Mapping):
        try:
            height, width = (int(v) for v in segmentation["size"])
            counts = segmentation["counts"]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"an RLE needs 'size' and 'counts'; got {segmentation!r:.80}") from exc
        if isinstance(counts, bytes):
            text = counts.decode("ascii")
        elif isinstance(counts, str):
            text = counts
        else:
            text = encode_counts([int(c) for c in counts])
        return {"size": [height, width], "counts": text}
    return mask_to_rle(np.asarray(segmentation), compressed=True)


def sa1b_dict(
    records: Iterable[Mapping[str, Any]],
    *,
    image_id: int,
    file_name: str,
    width: int,
    height: int,
) -> dict[str, Any]:
    """Build the SA-1B per-image JSON dict of one image from its generator records.

    Args:
        records: Records of :meth:`MaskGenerator.generate` for the image, any output mode.
        image_id: Id of the image (written to ``image.image_id``).
        file_name: Name of the image file (written to ``image.file_name``).
        width: Image width in pixels.
        height: Image height in pixels.

    Returns:
        ``{"image": {...}, "annotations": [...]}`` with plain JSON types only.

    Raises:
        InputError: A segmentation's size is not ``[height, width]``.
    """
    annotations = []
    for index, record in enumerate(records):
        rle = to_coco_rle(record["segmentation"])
        if rle["size"] != [height, width]:
            raise InputError(
                f"mask {index} has size {rle['size']}, but the image is {height}x{width}"
            )
        area = record.get("area")
        annotations.append(
            {
                "id": index + 1,
                "segmentation": rle,
                "bbox": [int(v) for v in record["bbox"]],
                "area": int(area) if area is not None else rle_area(rle),
                "predicted_iou": float(record["predicted_iou"]),
                "stability_score": float(record["stability_score"]),
                "crop_box": [int(v) for v in record["crop_box"]],
                "point_coords": [[float(x), float(y)] for x, y in record["point_coords"]],
            }
        )
    image = {
        "image_id": int(image_id),
        "file_name": str(file_name),
        "width": int(width),
        "height": int(height),
    }
    return {"image": image, "annotations": annotations}


def coco_instances(images: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge SA-1B dicts (see :func:`sa1b_dict`) of many images into one COCO instances dict.

    Image ids are kept; annotation ids are renumbered 1, 2, ... over all images in the
    order given. Each annotation gets ``category_id`` 1, ``iscrowd`` 0 and ``score`` equal
    to its ``predicted_iou``; ``stability_score``, ``crop_box`` and ``point_coords`` are
    kept as extra fields.

    Raises:
        InputError: Two images have the same ``image_id``.
    """
    coco_images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    seen: set[int] = set()
    for data in images:
        info = data["image"]
        image_id = int(info["image_id"])
        if image_id in seen:
            raise InputError(f"image id {image_id} occurs twice")
        seen.add(image_id)
        coco_images.append(
            {
                "id": image_id,
                "file_name": str(info["file_name"]),
                "width": int(info["width"]),
                "height": int(info["height"]),
            }
        )
        for ann in data["annotations"]:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": COCO_CATEGORY["id"],
                    "segmentation": to_coco_rle(ann["segmentation"]),
                    "area": int(ann["area"]),
                    "bbox": [int(v) for v in ann["bbox"]],
                    "iscrowd": 0,
                    "score": float(ann["predicted_iou"]),
                    "predicted_iou": float(ann["predicted_iou"]),
                    "stability_score": float(ann["stability_score"]),
                    "crop_box": [int(v) for v in ann["crop_box"]],
                    "point_coords": [[float(x), float(y)] for x, y in ann["point_coords"]],
                }
            )
    return {
        "info": {"description": "segany everything (class-agnostic masks)"},
        "images": coco_images,
        "annotations": annotations,
        "categories": [dict(COCO_CATEGORY)],
    }


def paint_order(annotations: Sequence[Mapping[str, Any]]) -> list[int]:
    """Indices of ``annotations`` in painting order: larger area first, ties by position."""
    return sorted(range(len(annotations)), key=lambda i: (-int(annotations[i]["area"]), i))


def label_map(
    annotations: Sequence[Mapping[str, Any]], height: int, width: int
) -> npt.NDArray[np.integer[Any]]:
    """Paint SA-1B annotations into an instance-id map.

    Pixel value ``annotations[i]["id"]`` marks mask ``i``; 0 is background. Masks are
    painted in :func:`paint_order` (largest first), so where masks overlap the smallest
    one wins. The mask of id ``k`` is recovered exactly as ``labels == k`` when no smaller
    mask overlaps it; in general ``labels == k`` is the mask minus the smaller masks.

    Returns:
        ``HxW`` ``uint16`` array when every id fits in 16 bits, else ``int32``.
    """
    ids = [int(ann["id"]) for ann in annotations]
    dtype = np.uint16 if max(ids, default=0) <= np.iinfo(np.uint16).max else np.int32
    labels = np.zeros((height, width), dtype=dtype)
    for i in paint_order(annotations):
        labels[_mask(annotations[i], height, width)] = ids[i]
    return labels


def overlay(
    image: npt.NDArray[np.uint8], annotations: Sequence[Mapping[str, Any]]
) -> npt.NDArray[np.uint8]:
    """The ``HxWx3`` image with every annotation's mask blended in, largest first."""
    height, width = int(image.shape[0]), int(image.shape[1])
    order = paint_order(annotations)
    masks = np.zeros((len(order), height, width), dtype=bool)
    for slot, i in enumerate(order):
        masks[slot] = _mask(annotations[i], height, width)
    return overlay_masks(image, masks)


def _mask(annotation: Mapping[str, Any], height: int, width: int) -> npt.NDArray[np.bool_]:
    """Decode one annotation's segmentation and check it has the image's size."""
    mask = rle_to_mask(to_coco_rle(annotation["segmentation"]))
    if mask.shape != (height, width):
        raise InputError(f"a mask has shape {mask.shape}, but the image is {height}x{width}")
    return mask
