"""Writing generated scenes as an SA-1B-style folder, and reading such folders back.

A folder holds, per image, ``<name>.png`` (PNG, so the pixels stay exact) and
``<name>.json`` laid out as in SA-1B::

    {
      "image": {"image_id": 0, "file_name": "scene_7.png", "width": 320, "height": 288,
                "seed": 7},
      "annotations": [
        {"id": 1, "segmentation": {"size": [288, 320], "counts": "<COCO RLE string>"},
         "bbox": [x, y, w, h], "area": 1234, "parent_id": null, "kind": "ellipse"},
        ...
      ]
    }

``segmentation`` is a compressed COCO RLE (see :mod:`segany.data.rle`); ``bbox`` is
XYWH in pixels with ``w = x_max - x + 1`` (as pycocotools' ``toBbox``). Extensions to
SA-1B: ``parent_id`` (the ``id`` of the annotation this one is a part of, ``null`` for a
whole object), ``kind`` (see :class:`~segany.data.scenes.Scene`) and the image's ``seed``.
Annotation ids count from 1 through the whole folder written by one call; ``image_id``
is the position of the seed in ``seeds``.

:func:`read_sa1b_folder` reads any folder of SA-1B JSON files (real SA-1B ones included,
whose images are JPEG).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segany.data.images import load_image
from segany.data.rle import mask_to_rle, rle_to_mask
from segany.data.scenes import SceneConfig, generate_scene
from segany.errors import InputError

__all__ = ["read_sa1b_folder", "write_sa1b_folder"]


def write_sa1b_folder(
    out_dir: str | Path, seeds: Iterable[int], config: SceneConfig = SceneConfig()
) -> list[Path]:
    """Generate a scene per seed and save it as ``scene_<seed>.png`` + ``scene_<seed>.json``.

    Args:
        out_dir: Folder to write into; created if missing. Existing files of the same
            names are overwritten.
        seeds: Scene seeds (non-negative integers), e.g. ``range(100)``.
        config: Scene parameters.

    Returns:
        The paths of the JSON files written, in the order of ``seeds``.

    Raises:
        InputError: ``out_dir`` exists and is not a folder, or a seed is invalid.
    """
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    next_id = 1
    for image_id, seed in enumerate(seeds):
        scene = generate_scene(seed, config)
        name = f"scene_{int(seed)}"
        height, width = scene.image.shape[:2]
        ids = list(range(next_id, next_id + len(scene)))
        next_id += len(scene)
        annotations: list[dict[str, Any]] = []
        for index, box in enumerate(scene.boxes.tolist()):
            x0, y0, x1, y1 = box
            parent = int(scene.parent[index])
            annotations.append(
                {
                    "id": ids[index],
                    "segmentation": mask_to_rle(scene.masks[index]),
                    "bbox": [x0, y0, x1 - x0 + 1, y1 - y0 + 1],
                    "area": int(np.count_nonzero(scene.masks[index])),
                    "parent_id": ids[parent] if parent >= 0 else None,
                    "kind": scene.kinds[index],
                }
            )
        record = {
            "image": {
                "image_id": image_id,
                "file_name": f"{name}.png",
                "width": width,
                "height": height,
                "seed": int(seed),
            },
            "annotations": annotations,
        }
        Image.fromarray(scene.image).save(folder / f"{name}.png")
        json_path = folder / f"{name}.json"
        json_path.write_text(json.dumps(record, separators=(",", ":")), encoding="utf-8")
        written.append(json_path)
    return written


def read_sa1b_folder(folder: str | Path) -> Iterator[tuple[np.ndarray, list[dict[str, Any]]]]:
    """Read an SA-1B-style folder, one image at a time, in order of JSON file name.

    Args:
        folder: Folder of ``<name>.json`` files, each naming its image in
            ``image.file_name`` (looked up in the same folder).

    Yields:
        ``(image, annotations)``: the image as ``HxWx3`` uint8 RGB, and the annotation
        dicts as stored except that ``segmentation`` is decoded into an ``HxW`` bool mask.

    Raises:
        InputError: ``folder`` is not a folder, a JSON file is unreadable or lacks
            ``image`` / ``annotations``, an image is missing or unreadable, or an image or
            a mask has another size than its JSON file states.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder")
    for json_path in sorted(root.glob("*.json")):
        record = _load_record(json_path)
        info = record["image"]
        image = load_image(root / str(info["file_name"]))
        expected = (info.get("height"), info.get("width"))
        if None not in expected and image.shape[:2] != expected:
            raise InputError(
                f"{json_path.name} says its image is {expected[0]}x{expected[1]} (HxW), "
                f"but {info['file_name']} is {image.shape[0]}x{image.shape[1]}"
            )
        annotations = []
        for annotation in record["annotations"]:
            if not isinstance(annotation, dict) or "segmentation" not in annotation:
                raise InputError(f"an annotation in {json_path.name} has no 'segmentation'")
            mask = rle_to_mask(annotation["segmentation"])
            if mask.shape != image.shape[:2]:
                raise InputError(
                    f"annotation {annotation.get('id')} of {json_path.name} has a "
                    f"{mask.shape[0]}x{mask.shape[1]} mask for a "
                    f"{image.shape[0]}x{image.shape[1]} image"
                )
            annotations.append({**annotation, "segmentation": mask})
        yield image, annotations


def _load_record(path: Path) -> dict[str, Any]:
    """Parse one SA-1B JSON file and check its top-level layout."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read {path}: {error}") from error
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("image"), dict)
        or "file_name" not in record["image"]
        or not isinstance(record.get("annotations"), list)
    ):
        raise InputError(
            f"{path} is not an SA-1B annotation file: it needs an 'image' object with a "
            "'file_name' and an 'annotations' list"
        )
    return record
