"""Batch "segment everything" over many images, with atomic outputs, resume and error records.

Inputs (:func:`expand_inputs`) are files, folders (searched recursively for files with an
image extension, hidden files and folders skipped) and glob patterns (``**`` allowed).
Files are de-duplicated by their resolved path and sorted, so the order and the image ids
are deterministic: image ``i`` (1-based) of the sorted list gets ``image_id`` ``i``. Ids
therefore stay the same across runs over the same inputs.

Output layout of :class:`Batch` (``KEY`` is the image's path relative to the deepest folder
holding all inputs, without its extension, so same-named files in different folders do
not collide; files differing only in extension get ``KEY = name_ext``)::

    OUT/KEY.json                  format sa1b: the SA-1B JSON of the image
    OUT/.parts/KEY.json           formats coco and png: the same JSON, kept for resuming
    OUT/coco_instances.json       format coco: all images, assembled at the end
    OUT/KEY.labels.png            format png: 16-bit instance-id map (see exports.label_map)
    OUT/KEY.overlay.png           format png: the image with its masks
    OUT/errors.jsonl              one JSON line per image that failed in the last run

Every file is written atomically (temporary file in the same folder + :func:`os.replace`).
The image's SA-1B JSON is written last and marks the image as finished: a rerun skips
images whose JSON exists, parses and names the same image id and file, and redoes all
others (outputs of a half-finished image are overwritten). Stale temporary files
(``.NAME.*.tmp``) left in ``OUT`` by a killed run are removed when a run starts.

An image that cannot be read or segmented (any :class:`~segany.errors.SegAnyError`) is
recorded in ``errors.jsonl`` and the batch continues; other exceptions propagate.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from segany.data.images import load_image
from segany.errors import InputError, SegAnyError
from segany.fileio import write_atomic

from .exports import coco_instances, label_map, overlay, sa1b_dict

__all__ = [
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "Batch",
    "BatchItem",
    "Outcome",
    "expand_inputs",
    "plan_items",
]

FORMATS = ("sa1b", "coco", "png")
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
ERRORS_FILE = "errors.jsonl"
COCO_FILE = "coco_instances.json"
PARTS_DIR = ".parts"

# generate(image, file_name) -> SegEvery records; file_name is the item's relative path
Generate = Callable[[np.ndarray, str], list[dict[str, Any]]]


@dataclass(frozen=True)
class BatchItem:
    """One input image: its id, file, name in the outputs and output key."""

    image_id: int
    source: Path
    file_name: str  # POSIX path relative to the common input folder
    key: str  # output name without extension, POSIX, relative to the output folder


@dataclass(frozen=True)
class Outcome:
    """What happened to one image in :meth:`Batch.run`."""

    item: BatchItem
    status: Literal["done", "skipped", "failed"]
    masks: int = 0
    error: str | None = None


def expand_inputs(inputs: Sequence[str | Path], *, exclude: Path | None = None) -> list[Path]:
    """Expand files, folders and glob patterns into a sorted list of unique image files.

    Args:
        inputs: Paths of files (taken whatever their extension) or folders, or glob patterns
            (``*``, ``?``, ``[...]``; ``**`` matches folders recursively); folders, given or
            matched, contribute their image files recursively.
        exclude: A folder whose files are never inputs (the output folder).

    Returns:
        Resolved paths, sorted, without duplicates.

    Raises:
        InputError: A path that does not exist, or a pattern that matches nothing.
    """
    skip = exclude.resolve() if exclude is not None else None
    found: set[Path] = set()
    for entry in inputs:
        text = str(entry)
        path = Path(text)
        if path.is_file():
            found.add(path.resolve())
        elif path.is_dir():
            found.update(_folder_images(path))
        elif any(char in text for char in "*?["):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise InputError(f"no files match '{text}'")
            for match in map(Path, matches):
                if match.is_dir():
                    found.update(_folder_images(match))
                elif match.suffix.lower() in IMAGE_EXTENSIONS:
                    found.add(match.resolve())
        else:
            raise InputError(f"input '{text}' does not exist")
    if skip is not None:
        found = {p for p in found if not p.is_relative_to(skip)}
    return sorted(found)


def plan_items(paths: Sequence[Path]) -> list[BatchItem]:
    """Number resolved, sorted image paths (ids from 1) and give each a unique output key."""
    if not paths:
        return []
    root = Path(os.path.commonpath([str(p.parent) for p in paths]))
    relative = [p.relative_to(root) for p in paths]
    keys = [r.with_suffix("").as_posix() for r in relative]
    clashes = Counter(keys)
    keys = [
        f"{key}_{r.suffix[1:]}" if clashes[key] > 1 else key
        for key, r in zip(keys, relative, strict=True)
    ]
    clashes = Counter(keys)
    keys = [f"{key}_{i + 1}" if clashes[key] > 1 else key for i, key in enumerate(keys)]
    return [
        BatchItem(i + 1, path, rel.as_posix(), key)
        for i, (path, rel, key) in enumerate(zip(paths, relative, keys, strict=True))
    ]


class Batch:
    """Segment-everything over planned items into one output folder, in one format.

    Args:
        items: Images from :func:`plan_items`.
        out_dir: Output folder (created when the run starts).
        fmt: One of :data:`FORMATS`.
    """

    def __init__(self, items: Sequence[BatchItem], out_dir: Path, fmt: str = "sa1b") -> None:
        if fmt not in FORMATS:
            raise InputError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
        self.items = list(items)
        self.out_dir = Path(out_dir)
        self.fmt = fmt

    @property
    def errors_path(self) -> Path:
        """The ``errors.jsonl`` file of this batch."""
        return self.out_dir / ERRORS_FILE

    @property
    def coco_path(self) -> Path:
        """The assembled COCO instances file (format ``coco`` only)."""
        return self.out_dir / COCO_FILE

    def marker(self, item: BatchItem) -> Path:
        """The SA-1B JSON of ``item``, written last: its presence means the image is done."""
        if self.fmt == "sa1b":
            return self.out_dir / f"{item.key}.json"
        return self.out_dir / PARTS_DIR / f"{item.key}.json"

    def png_paths(self, item: BatchItem) -> tuple[Path, Path]:
        """The label map and overlay PNGs of ``item`` (format ``png``)."""
        return (
            self.out_dir / f"{item.key}.labels.png",
            self.out_dir / f"{item.key}.overlay.png",
        )

    def load_done(self, item: BatchItem) -> dict[str, Any] | None:
        """The finished SA-1B dict of ``item``, or ``None`` if it is missing or not valid."""
        try:
            data = json.loads(self.marker(item).read_text(encoding="utf-8"))
            info = data["image"]
            valid = (
                info["image_id"] == item.image_id
                and info["file_name"] == item.file_name
                and isinstance(data["annotations"], list)
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if valid and self.fmt == "png" and not all(p.is_file() for p in self.png_paths(item)):
            return None
        return data if valid else None

    def pending(self) -> list[BatchItem]:
        """The items without a valid finished output."""
        return [item for item in self.items if self.load_done(item) is None]

    def run(
        self, generate: Generate, items: Iterable[BatchItem] | None = None
    ) -> Iterator[Outcome]:
        """Process images one by one, yielding an :class:`Outcome` after each.

        Finished images are skipped. ``errors.jsonl`` is rewritten: it lists the failures
        of this run, one JSON line each (``image_id``, ``file``, ``file_name``, ``error``),
        flushed as they happen. Stale temporary files are removed first.

        Args:
            generate: Maps an ``HxWx3`` ``uint8`` image to generator records.
            items: A subset of the items to process; default all.
        """
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._remove_temp_files()
        with open(self.errors_path, "w", encoding="utf-8") as log:
            for item in self.items if items is None else items:
                if self.load_done(item) is not None:
                    yield Outcome(item, "skipped")
                    continue
                outcome = self._process(item, generate)
                if outcome.status == "failed":
                    record = {
                        "image_id": item.image_id,
                        "file": str(item.source),
                        "file_name": item.file_name,
                        "error": outcome.error,
                    }
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                yield outcome

    def finish(self) -> Path | None:
        """Write ``coco_instances.json`` from all finished images (format ``coco``).

        Returns:
            The COCO file, or ``None`` for other formats.
        """
        if self.fmt != "coco":
            return None
        done = [data for data in map(self.load_done, self.items) if data is not None]
        write_atomic(self.coco_path, _json_bytes(coco_instances(done)))
        return self.coco_path

    def _process(self, item: BatchItem, generate: Generate) -> Outcome:
        """Segment one image and write its outputs, the SA-1B JSON last."""
        try:
            image = load_image(item.source)
            records = generate(image, item.file_name)
            height, width = int(image.shape[0]), int(image.shape[1])
            data = sa1b_dict(
                records,
                image_id=item.image_id,
                file_name=item.file_name,
                width=width,
                height=height,
            )
            pngs: list[tuple[Path, bytes]] = []
            if self.fmt == "png":
                labels_path, overlay_path = self.png_paths(item)
                labels = label_map(data["annotations"], height, width)
                if labels.dtype != np.uint16:
                    raise InputError("more than 65535 masks do not fit in a 16-bit label map")
                pngs = [
                    (labels_path, _png_bytes(labels)),
                    (overlay_path, _png_bytes(overlay(image, data["annotations"]))),
                ]
        except SegAnyError as exc:
            return Outcome(item, "failed", error=_one_line(str(exc) or type(exc).__name__))
        for path, payload in pngs:
            write_atomic(path, payload)
        write_atomic(self.marker(item), _json_bytes(data))
        return Outcome(item, "done", masks=len(data["annotations"]))

    def _remove_temp_files(self) -> None:
        """Delete temporary files (``.NAME.*.tmp``) that a killed run left behind."""
        for path in self.out_dir.rglob(".*.tmp"):
            if path.is_file():
                with contextlib.suppress(OSError):
                    path.unlink()


def _json_bytes(data: Any) -> bytes:
    """Compact, deterministic JSON encoding, ending in a newline."""
    return (json.dumps(data, separators=(",", ":")) + "\n").encode("utf-8")


def _png_bytes(array: np.ndarray) -> bytes:
    """Encode a ``uint16`` label map (16-bit grayscale) or an RGB image as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def _folder_images(folder: Path) -> set[Path]:
    """Image files under ``folder``, recursively, skipping hidden files and folders."""
    found = set()
    for path in folder.rglob("*"):
        parts = path.relative_to(folder).parts
        if any(part.startswith(".") for part in parts):
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            found.add(path.resolve())
    return found


def _one_line(message: str) -> str:
    """Join the non-blank lines of ``message`` with spaces."""
    return " ".join(line.strip() for line in message.splitlines() if line.strip())
