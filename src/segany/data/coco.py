"""COCO instance files: writing a :class:`~segany.data.dataset.Dataset` and reading one back.

Written files are COCO *instances* documents (``info``, ``licenses``, ``images``,
``annotations``, ``categories``). Each annotation carries ``id``, ``image_id``,
``category_id``, ``segmentation`` (compressed RLE, or polygons with holes spliced in, see
:mod:`segany.data.polygons`), ``bbox`` (XYWH), ``area`` (pixels), ``iscrowd`` 0 and, where
known, ``score`` (= ``predicted_iou``, as in COCO result files), ``predicted_iou`` and
``stability_score``; segany's provenance (:attr:`DatasetAnnotation.extra`) goes under the
key ``"segany"``. :func:`read_coco` gives all of that back, so an RLE file round-trips
exactly (a polygon file too: the polygons are exact pixel outlines).

:func:`read_coco` also reads COCO files made elsewhere: segmentations as compressed RLE,
uncompressed RLE (``iscrowd`` annotations) or polygons, all kept as compressed RLE. A
file's ``area`` (for polygons, COCO stores the polygon's area) is kept rounded to whole
pixels, since COCO evaluation buckets objects by it; ``area`` and ``bbox`` are computed
from the mask when missing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from segany.data.dataset import Dataset, DatasetAnnotation, DatasetImage, mask_bbox
from segany.data.polygons import mask_to_polygons, polygons_to_mask
from segany.data.rle import decode_counts, mask_to_rle, rle_area, rle_to_mask
from segany.errors import InputError
from segany.fileio import write_atomic

__all__ = ["COCO_CATEGORIES", "coco_document", "read_coco", "read_coco_file", "write_coco_file"]

Segmentation = Literal["rle", "polygon"]

# supercategory -> "id name, id name, ..." of the 80 COCO 2017 instance categories
_COCO_TABLE = (
    ("person", "1 person"),
    ("vehicle", "2 bicycle, 3 car, 4 motorcycle, 5 airplane, 6 bus, 7 train, 8 truck, 9 boat"),
    ("outdoor", "10 traffic light, 11 fire hydrant, 13 stop sign, 14 parking meter, 15 bench"),
    ("animal", "16 bird, 17 cat, 18 dog, 19 horse, 20 sheep, 21 cow, 22 elephant, 23 bear, "
               "24 zebra, 25 giraffe"),
    ("accessory", "27 backpack, 28 umbrella, 31 handbag, 32 tie, 33 suitcase"),
    ("sports", "34 frisbee, 35 skis, 36 snowboard, 37 sports ball, 38 kite, 39 baseball bat, "
               "40 baseball glove, 41 skateboard, 42 surfboard, 43 tennis racket"),
    ("kitchen", "44 bottle, 46 wine glass, 47 cup, 48 fork, 49 knife, 50 spoon, 51 bowl"),
    ("food", "52 banana, 53 apple, 54 sandwich, 55 orange, 56 broccoli, 57 carrot, 58 hot dog, "
             "59 pizza, 60 donut, 61 cake"),
    ("furniture", "62 chair, 63 couch, 64 potted plant, 65 bed, 67 dining table, 70 toilet"),
    ("electronic", "72 tv, 73 laptop, 74 mouse, 75 remote, 76 keyboard, 77 cell phone"),
    ("appliance", "78 microwave, 79 oven, 80 toaster, 81 sink, 82 refrigerator"),
    ("indoor", "84 book, 85 clock, 86 vase, 87 scissors, 88 teddy bear, 89 hair drier, "
               "90 toothbrush"),
)  # fmt: skip

#: The 80 COCO 2017 instance categories with their official ids (1..90 with gaps), in id
#: order: a project's default label set.
COCO_CATEGORIES: tuple[dict[str, Any], ...] = tuple(
    {"id": int(number), "name": name, "supercategory": supercategory}
    for supercategory, entries in _COCO_TABLE
    for number, name in (entry.split(" ", 1) for entry in entries.split(", "))
)


def coco_document(
    dataset: Dataset,
    *,
    segmentation: Segmentation = "rle",
    info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The COCO instances dict of a dataset (see the module docstring for its fields).

    Args:
        dataset: What to write.
        segmentation: ``"rle"`` (compressed RLE, exact and compact) or ``"polygon"``
            (pixel outlines with holes spliced in; larger, but read by more tools).
        info: The document's ``info`` object (default: a one-line description).

    Raises:
        InputError: ``segmentation`` is neither ``"rle"`` nor ``"polygon"``.
    """
    if segmentation not in ("rle", "polygon"):
        raise InputError(f"segmentation must be 'rle' or 'polygon'; got {segmentation!r}")
    images = [
        {"id": im.id, "file_name": im.file_name, "width": im.width, "height": im.height}
        for im in dataset.images
    ]
    annotations = [_coco_annotation(ann, segmentation) for ann in dataset.annotations]
    return {
        "info": dict(info) if info is not None else {"description": "exported by segany"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [dict(category) for category in dataset.categories],
    }


def write_coco_file(
    dataset: Dataset,
    path: str | Path,
    *,
    segmentation: Segmentation = "rle",
    info: Mapping[str, Any] | None = None,
) -> Path:
    """Write :func:`coco_document` as JSON, atomically (a temporary sibling, then renamed).

    Returns:
        ``path``. Missing parent folders are created.

    Raises:
        InputError: ``path`` is a folder, or an annotation's ``extra`` is not JSON-able.
    """
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{target} is a folder; a COCO file needs a file path (e.g. coco.json)")
    document = coco_document(dataset, segmentation=segmentation, info=info)
    try:
        text = json.dumps(document, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InputError(f"the dataset cannot be written as JSON: {error}") from error
    return write_atomic(target, text.encode("utf-8"))


def read_coco_file(path: str | Path) -> Dataset:
    """Read a COCO instances JSON file (see :func:`read_coco`).

    Raises:
        InputError: The file is unreadable, not JSON, or not a valid COCO document; the
            message names the file and the offending image or annotation.
    """
    source = Path(path)
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read {source}: {error}") from error
    except json.JSONDecodeError as error:
        raise InputError(f"{source} is not valid JSON: {error}") from error
    try:
        return read_coco(document)
    except InputError as error:
        raise InputError(f"{source}: {error}") from error


def read_coco(document: Any) -> Dataset:
    """Turn a parsed COCO instances document into a :class:`Dataset`.

    Every segmentation (compressed RLE, uncompressed RLE or polygons) becomes compressed
    RLE; ``predicted_iou`` is read from ``"predicted_iou"``, else from ``"score"``; the
    ``"segany"`` object becomes ``extra``. ``annotations`` may be missing (no masks).

    Raises:
        InputError: The document is not an object with ``images`` and ``categories``
            lists; an image or category lacks a field or has a bad one; an annotation is
            malformed, refers to an image or category the file does not have, or has a
            mask of another size than its image; ids occur twice.
    """
    if not isinstance(document, Mapping):
        raise InputError(
            "a COCO file must hold a JSON object with 'images', 'annotations' and "
            f"'categories'; got {type(document).__name__}"
        )
    raw_images = _list(document, "images")
    raw_annotations = _list(document, "annotations") if "annotations" in document else []
    raw_categories = _list(document, "categories")
    images: dict[int, DatasetImage] = {}
    for position, raw in enumerate(raw_images):
        image = _read_image(raw, position)
        if image.id in images:
            raise InputError(f"image id {image.id} occurs twice in 'images'")
        images[image.id] = image
    categories = tuple(_read_category(raw, position) for position, raw in enumerate(raw_categories))
    category_ids = {int(category["id"]) for category in categories}
    annotations = tuple(
        _read_annotation(raw, position, images, category_ids)
        for position, raw in enumerate(raw_annotations)
    )
    return Dataset(tuple(images.values()), annotations, categories)


def _coco_annotation(ann: DatasetAnnotation, segmentation: Segmentation) -> dict[str, Any]:
    """One annotation as a COCO dict."""
    record: dict[str, Any] = {
        "id": ann.id,
        "image_id": ann.image_id,
        "category_id": ann.category_id,
        "segmentation": dict(ann.rle) if segmentation == "rle" else mask_to_polygons(ann.mask()),
        "area": ann.area,
        "bbox": list(ann.bbox),
        "iscrowd": 0,
    }
    if ann.predicted_iou is not None:
        record["score"] = record["predicted_iou"] = ann.predicted_iou
    if ann.stability_score is not None:
        record["stability_score"] = ann.stability_score
    record["segany"] = dict(ann.extra)
    return record


def _list(document: Mapping[str, Any], key: str) -> list[Any]:
    value = document.get(key)
    if not isinstance(value, list):
        found = "is missing" if value is None else f"is a {type(value).__name__}"
        raise InputError(f"a COCO file needs a list of {key}; '{key}' {found}")
    return value


def _int(value: Any, what: str) -> int:
    """``value`` as an int; integral floats (``3.0``) pass, bools and other types do not."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(_float(value, what, integer=True))


def _float(value: Any, what: str, *, integer: bool = False) -> float:
    """``value`` as a finite float (a whole number if ``integer``)."""
    valid = isinstance(value, int | float) and not isinstance(value, bool)
    if not valid or not math.isfinite(value) or (integer and not float(value).is_integer()):
        kind = "an integer" if integer else "a finite number"
        raise InputError(f"{what} must be {kind}; got {value!r:.40}")
    return float(value)


def _read_image(raw: Any, position: int) -> DatasetImage:
    if not isinstance(raw, Mapping):
        raise InputError(f"images[{position}] is not an object")
    if "id" not in raw:
        raise InputError(f"images[{position}] has no 'id'")
    image_id = _int(raw["id"], f"the id of images[{position}]")
    label = f"image {image_id}"
    for key in ("file_name", "width", "height"):
        if key not in raw:
            raise InputError(f"{label} has no '{key}'")
    if not isinstance(raw["file_name"], str):
        raise InputError(f"{label} has a 'file_name' that is not a string")
    width, height = (_int(raw[key], f"the {key} of {label}") for key in ("width", "height"))
    return DatasetImage(id=image_id, file_name=raw["file_name"], width=width, height=height)


def _read_category(raw: Any, position: int) -> dict[str, Any]:
    if not isinstance(raw, Mapping) or "id" not in raw or not isinstance(raw.get("name"), str):
        raise InputError(f"categories[{position}] needs an 'id' and a 'name'; got {raw!r:.80}")
    return {**raw, "id": _int(raw["id"], f"the id of categories[{position}]")}


def _read_annotation(
    raw: Any, position: int, images: Mapping[int, DatasetImage], category_ids: set[int]
) -> DatasetAnnotation:
    if not isinstance(raw, Mapping):
        raise InputError(f"annotations[{position}] is not an object")
    for key in ("id", "image_id", "category_id", "segmentation"):
        if key not in raw:
            name = f"annotation {raw['id']}" if "id" in raw else f"annotations[{position}]"
            raise InputError(f"{name} has no '{key}'")
    ann_id = _int(raw["id"], f"the id of annotations[{position}]")
    label = f"annotation {ann_id}"
    image_id = _int(raw["image_id"], f"the image_id of {label}")
    image = images.get(image_id)
    if image is None:
        raise InputError(f"{label} refers to image {image_id}, which the file does not have")
    category_id = _int(raw["category_id"], f"the category_id of {label}")
    if category_id not in category_ids:
        raise InputError(
            f"{label} has category {category_id}, which the file's 'categories' do not list"
        )
    try:
        rle = _segmentation_rle(raw["segmentation"], image, label)
    except InputError as error:
        message = str(error)
        raise InputError(message if message.startswith(label) else f"{label}: {message}") from error
    area, bbox, extra = raw.get("area"), raw.get("bbox"), raw.get("segany", {})
    if not isinstance(extra, Mapping):
        raise InputError(f"{label} has a 'segany' value that is not an object")
    iou, stability = raw.get("predicted_iou", raw.get("score")), raw.get("stability_score")
    return DatasetAnnotation(
        id=ann_id,
        image_id=image_id,
        category_id=category_id,
        rle=rle,
        bbox=mask_bbox(rle_to_mask(rle)) if bbox is None else _bbox(bbox, label),
        area=rle_area(rle) if area is None else round(_float(area, f"the area of {label}")),
        predicted_iou=None if iou is None else _float(iou, f"the score of {label}"),
        stability_score=(
            None if stability is None else _float(stability, f"the stability_score of {label}")
        ),
        extra=dict(extra),
    )


def _bbox(value: Any, label: str) -> tuple[float, float, float, float]:
    if not isinstance(value, list | tuple) or len(value) != 4:
        raise InputError(f"{label} has a bbox that is not [x, y, width, height]")
    x, y, w, h = (_float(v, f"a bbox value of {label}") for v in value)
    if w < 0 or h < 0:
        raise InputError(f"{label} has a bbox of negative size: {list(value)}")
    return (x, y, w, h)


def _segmentation_rle(segmentation: Any, image: DatasetImage, label: str) -> dict[str, Any]:
    """A COCO segmentation (RLE of either kind, or polygons) as compressed RLE."""
    height, width = image.height, image.width
    if isinstance(segmentation, list):
        return mask_to_rle(polygons_to_mask(segmentation, height, width))
    if not isinstance(segmentation, Mapping) or "counts" not in segmentation:
        raise InputError(
            f"{label} has a segmentation that is neither an RLE object "
            "({'size': [h, w], 'counts': ...}) nor a list of polygons"
        )
    size = segmentation.get("size")
    if not isinstance(size, list | tuple) or list(size) != [height, width]:
        raise InputError(
            f"{label} has a mask of size {size} (HxW), but image {image.id} "
            f"({image.file_name}) is {height}x{width}"
        )
    counts = segmentation["counts"]
    if isinstance(counts, str | bytes):
        text = counts.decode("latin-1") if isinstance(counts, bytes) else counts
        total = sum(decode_counts(text))
        if total != height * width:
            raise InputError(
                f"{label} has RLE counts adding up to {total} pixels, but its image has "
                f"{height * width}"
            )
        return {"size": [height, width], "counts": text}
    if not isinstance(counts, list):
        raise InputError(f"{label} has RLE counts that are neither a string nor a list")
    # uncompressed (iscrowd) RLE: decode and re-encode, so the string is canonical
    runs = [_int(c, f"an RLE count of {label}") for c in counts]
    return mask_to_rle(rle_to_mask({"size": [height, width], "counts": runs}))
