"""Writing a :class:`~segany.data.dataset.Dataset` in one of the export formats.

``segany project export ID --format coco|sa1b|yolo|png -o PATH`` ends here, in
:func:`write_dataset`:

* ``coco``: ``PATH`` is one COCO instances JSON file (:func:`segany.data.coco.write_coco_file`).
* ``sa1b``: ``PATH`` is a folder with one ``<stem>.json`` per image in the SA-1B layout
  (``{"image": {...}, "annotations": [...]}``, RLE segmentations, ``crop_box`` the whole
  image, ``point_coords`` from ``extra["prompts"]["points"]``, plus ``category_id``), and
  the image itself beside it when ``image_path`` is given; :func:`segany.data.sa1b.
  read_sa1b_folder` reads it back.
* ``yolo``: ``PATH`` is a folder with ``labels/<stem>.txt`` (a line
  ``class x1 y1 x2 y2 ...`` per object, coordinates in [0, 1], ``class`` the category's
  position in ``dataset.categories``; the parts and holes of an object are joined into one
  polygon by zero-width bridges), ``data.yaml`` and, when ``image_path`` is given,
  ``images/<stem>.<ext>``.
* ``png``: ``PATH`` is a folder with an instance map ``<stem>.png`` per image (16-bit: 0
  background, value ``k`` the ``k``-th annotation of that image, painted largest first so a
  smaller mask lying on a larger one stays visible) and ``instances.json`` mapping each PNG
  name to ``[{"value", "annotation_id", "category_id", "category"}, ...]``.

File names come from the database and may be hostile: only the base name of
``file_name`` is used, cleaned of control characters and leading dots; names that clash
(case-insensitively) get ``_<image id>``; nothing is written outside ``PATH``. Files of an
earlier export to the same folder are overwritten but not removed.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from segany.data.coco import Segmentation, write_coco_file
from segany.data.dataset import Dataset, DatasetAnnotation, DatasetImage
from segany.data.polygons import join_polygons, mask_to_polygons
from segany.errors import InputError

__all__ = ["FORMATS", "image_stems", "write_dataset"]

#: The export formats :func:`write_dataset` knows.
FORMATS = ("coco", "sa1b", "yolo", "png")

ImagePath = Callable[[DatasetImage], Path]

_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")
_MAX_STEM_BYTES = 180


def write_dataset(
    dataset: Dataset,
    fmt: str,
    out: str | Path,
    *,
    segmentation: Segmentation = "rle",
    image_path: ImagePath | None = None,
) -> Path:
    """Write ``dataset`` in format ``fmt`` (one of :data:`FORMATS`) to ``out``.

    Args:
        dataset: What to write.
        fmt: ``"coco"``, ``"sa1b"``, ``"yolo"`` or ``"png"`` (see the module docstring).
        out: The JSON file for ``coco``, else a folder (created if missing).
        segmentation: ``"rle"`` or ``"polygon"``, for ``coco`` only.
        image_path: Where an image's file lies; given, ``sa1b`` and ``yolo`` copy the
            images into ``out`` (``coco`` and ``png`` write annotations only).

    Returns:
        The file (``coco``) or folder written.

    Raises:
        InputError: ``fmt`` is unknown, ``out`` is a file where a folder is needed (or the
            reverse), an image file is missing, or an image has over 65535 masks (``png``).
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if segmentation not in ("rle", "polygon"):
        raise InputError(f"segmentation must be 'rle' or 'polygon'; got {segmentation!r}")
    if fmt == "coco":
        return write_coco_file(dataset, out, segmentation=segmentation)
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} exists and is not a folder; {fmt} exports need a folder")
    folder.mkdir(parents=True, exist_ok=True)
    stems = image_stems(dataset.images)
    if fmt == "sa1b":
        _write_sa1b(dataset, folder, stems, image_path)
    elif fmt == "yolo":
        _write_yolo(dataset, folder, stems, image_path)
    else:
        _write_png(dataset, folder, stems)
    return folder


def image_stems(images: Sequence[DatasetImage]) -> dict[int, str]:
    """Image id -> a file-name stem that is safe and unique (case-insensitively).

    The stem is that of the base name of ``file_name`` (``"a/b/photo.jpg"`` -> ``"photo"``)
    with control characters replaced, leading and trailing dots and spaces removed and its
    length bounded; ``image_<id>`` when nothing is left. Stems shared by several images get
    ``_<image id>`` appended.
    """
    bases = {image.id: _clean_stem(image) for image in images}
    shared = Counter(stem.casefold() for stem in bases.values())
    stems: dict[int, str] = {}
    used: set[str] = set()
    for image in images:
        stem = bases[image.id]
        if shared[stem.casefold()] > 1:
            stem = f"{stem}_{image.id}"
        candidate, n = stem, 2
        while candidate.casefold() in used:  # only if a name already ended in _<id>
            candidate, n = f"{stem}_{n}", n + 1
        used.add(candidate.casefold())
        stems[image.id] = candidate
    return stems


def _clean_stem(image: DatasetImage) -> str:
    base = PurePosixPath(image.file_name.replace("\\", "/")).name
    stem = _UNSAFE.sub("_", PurePosixPath(base).stem).strip(". ")
    stem = stem.encode("utf-8")[:_MAX_STEM_BYTES].decode("utf-8", "ignore").rstrip(". ")
    return stem or f"image_{image.id}"


def _suffix(image: DatasetImage, source: Path | None) -> str:
    """The extension for a copy of the image: the source file's, else ``file_name``'s."""
    for name in (source.name if source else "", image.file_name.replace("\\", "/")):
        suffix = PurePosixPath(name).suffix
        if _SUFFIX.fullmatch(suffix):
            return suffix
    return ""


def _inside(folder: Path, name: str) -> Path:
    """``folder / name``, refusing any name that would lead out of ``folder``."""
    path = folder / name
    if path.resolve().parent != folder.resolve():
        raise InputError(f"refusing to write {name!r}: it is not a plain file name")
    return path


def _copy_image(image: DatasetImage, source: Path, target: Path) -> None:
    if not source.is_file():
        raise InputError(f"image {image.id} ({image.file_name}): {source} is not a file")
    with contextlib.suppress(shutil.SameFileError):  # exporting next to the originals
        shutil.copyfile(source, target)


def _write_sa1b(
    dataset: Dataset, folder: Path, stems: Mapping[int, str], image_path: ImagePath | None
) -> None:
    grouped = dataset.annotations_by_image()
    for image in dataset.images:
        source = Path(image_path(image)) if image_path is not None else None
        file_name = stems[image.id] + _suffix(image, source)
        if source is not None:
            _copy_image(image, source, _inside(folder, file_name))
        record = {
            "image": {
                "image_id": image.id,
                "file_name": file_name,
                "width": image.width,
                "height": image.height,
            },
            "annotations": [_sa1b_annotation(ann, image) for ann in grouped[image.id]],
        }
        text = json.dumps(record, separators=(",", ":"))
        _inside(folder, f"{stems[image.id]}.json").write_text(text, encoding="utf-8")


def _sa1b_annotation(ann: DatasetAnnotation, image: DatasetImage) -> dict[str, Any]:
    return {
        "id": ann.id,
        "segmentation": dict(ann.rle),
        "bbox": list(ann.bbox),
        "area": ann.area,
        "predicted_iou": ann.predicted_iou,
        "stability_score": ann.stability_score,
        "point_coords": _point_coords(ann.extra),
        "crop_box": [0, 0, image.width, image.height],
        "category_id": ann.category_id,
    }


def _point_coords(extra: Mapping[str, Any]) -> list[list[float]]:
    """``[[x, y], ...]`` of ``extra["prompts"]["points"]`` (``[x, y, ...]`` lists or
    ``{"x": .., "y": ..}`` objects); entries of any other shape are skipped."""
    prompts = extra.get("prompts")
    points = prompts.get("points") if isinstance(prompts, Mapping) else None
    coords: list[list[float]] = []
    for point in points if isinstance(points, list | tuple) else []:
        xy = (point.get("x"), point.get("y")) if isinstance(point, Mapping) else point
        if isinstance(xy, list | tuple) and len(xy) >= 2:
            x, y = xy[0], xy[1]
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y)):
                coords.append([float(x), float(y)])
    return coords


def _write_yolo(
    dataset: Dataset, folder: Path, stems: Mapping[int, str], image_path: ImagePath | None
) -> None:
    class_of = {int(c["id"]): index for index, c in enumerate(dataset.categories)}
    labels = folder / "labels"
    labels.mkdir(exist_ok=True)
    if image_path is not None:
        (folder / "images").mkdir(exist_ok=True)
    grouped = dataset.annotations_by_image()
    for image in dataset.images:
        lines = []
        for ann in grouped[image.id]:
            ring = join_polygons(mask_to_polygons(ann.mask()))
            if not ring:
                continue  # an empty mask has no polygon
            xy = np.asarray(ring).reshape(-1, 2) / (image.width, image.height)
            coords = " ".join(f"{v:.6f}" for v in np.clip(xy, 0.0, 1.0).ravel())
            lines.append(f"{class_of[ann.category_id]} {coords}\n")
        _inside(labels, f"{stems[image.id]}.txt").write_text("".join(lines), encoding="utf-8")
        if image_path is not None:
            source = Path(image_path(image))
            target = _inside(folder / "images", stems[image.id] + _suffix(image, source))
            _copy_image(image, source, target)
    names = "".join(
        f"  {index}: {json.dumps(str(c['name']))}\n" for index, c in enumerate(dataset.categories)
    )
    yaml = (
        f"path: {json.dumps(str(folder.resolve()))}\n"
        "train: images\n"
        "val: images\n"
        f"nc: {len(dataset.categories)}\n"
        f"names:\n{names}"
    )
    (folder / "data.yaml").write_text(yaml, encoding="utf-8")


def _write_png(dataset: Dataset, folder: Path, stems: Mapping[int, str]) -> None:
    category = dataset.category_names()
    grouped = dataset.annotations_by_image()
    instances: dict[str, list[dict[str, Any]]] = {}
    for image in dataset.images:
        anns = grouped[image.id]
        if len(anns) > np.iinfo(np.uint16).max:
            raise InputError(
                f"image {image.id} ({image.file_name}) has {len(anns)} masks; a 16-bit PNG "
                "instance map holds at most 65535"
            )
        values = np.zeros((image.height, image.width), dtype=np.uint16)
        for index in sorted(range(len(anns)), key=lambda i: (-anns[i].area, i)):
            values[anns[index].mask()] = index + 1
        name = f"{stems[image.id]}.png"
        Image.fromarray(values).save(_inside(folder, name))
        instances[name] = [
            {
                "value": index + 1,
                "annotation_id": ann.id,
                "category_id": ann.category_id,
                "category": category[ann.category_id],
            }
            for index, ann in enumerate(anns)
        ]
    text = json.dumps(instances, indent=1, ensure_ascii=False)
    (folder / "instances.json").write_text(text, encoding="utf-8")
