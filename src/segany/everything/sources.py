"""Box prompts for object-aware SegEvery (``MaskGenerator(strategy="objects")``).

A box source is any callable ``source(image, predictor, name) -> Nx4`` XYXY boxes in the
image's pixels, best first; the predictor has the image set (its embedding is there to
reuse), ``name`` is the image's file name when known. segany has three:

* :class:`HeadBoxes`: the built-in prompt head on the image embedding the encoder already
  computed (:mod:`segany.models.prompt_head`); no second backbone runs.
* :class:`YoloBoxes`: an Ultralytics YOLO checkpoint, as MobileSAMv2 uses one (the
  optional ``ultralytics`` package; conf 0.4, NMS IoU 0.9, at most 320 boxes, boxes within
  20 px of the border snapped to it).
* :class:`JsonBoxes`: boxes from a JSON file, ``{"file_name": [[x0, y0, x1, y1], ...]}``.

:func:`box_source` turns the CLI's ``head``, ``yolo:PATH`` and ``boxes:FILE`` into one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from ..errors import InputError
from ..models.prompt_head import PromptHead, decode_boxes
from .masks import nms

if TYPE_CHECKING:
    from ..predictor import Predictor

__all__ = [
    "BoxSource",
    "HeadBoxes",
    "JsonBoxes",
    "YoloBoxes",
    "box_source",
    "check_boxes",
    "snap_to_border",
]


class BoxSource(Protocol):
    """Boxes that hold objects: Nx4 float XYXY in the image's pixels, best first."""

    def __call__(self, image: np.ndarray, predictor: Predictor, name: str | None) -> np.ndarray: ...


def check_boxes(boxes: object, size: tuple[int, int], origin: str) -> np.ndarray:
    """``boxes`` as an Nx4 float64 array clipped to the image; a clear error otherwise."""
    try:
        array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    except (TypeError, ValueError):
        raise InputError(f"{origin}: boxes must be a list of [x0, y0, x1, y1]") from None
    if not np.isfinite(array).all():
        raise InputError(f"{origin}: boxes must be finite numbers")
    if (array[:, 2] < array[:, 0]).any() or (array[:, 3] < array[:, 1]).any():
        raise InputError(f"{origin}: every box needs x1 >= x0 and y1 >= y0 (XYXY)")
    height, width = size
    array[:, 0::2] = array[:, 0::2].clip(0, width - 1)
    array[:, 1::2] = array[:, 1::2].clip(0, height - 1)
    return array


def snap_to_border(boxes: np.ndarray, size: tuple[int, int], margin: float) -> np.ndarray:
    """Move box sides within ``margin`` px of the image border onto it (MobileSAMv2)."""
    height, width = size
    out = boxes.copy()
    out[:, 0] = np.where(out[:, 0] < margin, 0, out[:, 0])
    out[:, 1] = np.where(out[:, 1] < margin, 0, out[:, 1])
    out[:, 2] = np.where(out[:, 2] > width - 1 - margin, width - 1, out[:, 2])
    out[:, 3] = np.where(out[:, 3] > height - 1 - margin, height - 1, out[:, 3])
    return out


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """NxM IoU of Nx4 and Mx4 XYXY boxes."""
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


class HeadBoxes:
    """Boxes from a :class:`~segany.models.prompt_head.PromptHead` on the image embedding.

    Arguments:
      head: the trained head (see ``segany train prompt-head``).
      conf: keep peaks with objectness >= this. max_boxes: at most this many.
      nms_thresh: box IoU above which a lower-scored box is dropped (1 disables).

    The default ``conf`` was chosen by measured AR on held-out scenes with the bundled
    model: fewer, surer boxes rank best at 10 masks, cost little at 100 and are cheaper
    to decode than the lower thresholds' many boxes, also with the objects strategy's three
    masks per box and no NMS (docs/benchmarks.md, 'Object-aware SegEvery (MobileSAMv2)
    against the grid' and 'Three masks per box, no NMS').
    """

    def __init__(
        self, head: PromptHead, conf: float = 0.3, max_boxes: int = 320, nms_thresh: float = 0.9
    ) -> None:
        self.head = head.eval()
        self.conf = float(conf)
        self.max_boxes = int(max_boxes)
        self.nms_thresh = float(nms_thresh)

    @torch.inference_mode()
    def __call__(self, image: np.ndarray, predictor: Predictor, name: str | None) -> np.ndarray:
        embedding = predictor.get_image_embedding()
        objectness, params = self.head(embedding)
        cell = predictor.model.image_size / objectness.shape[-1]
        boxes, scores = decode_boxes(objectness, params, cell, self.conf, self.max_boxes)[0]
        if self.nms_thresh < 1.0:
            boxes = boxes[nms(boxes, scores, self.nms_thresh)]
        # input frame -> the image's pixels (the predictor resized the long side)
        scale = max(predictor.original_size) / predictor.model.image_size
        return check_boxes(boxes.numpy() * scale, predictor.original_size, "prompt head")


class JsonBoxes:
    """Boxes read from a JSON file: ``{"file_name": [[x0, y0, x1, y1], ...], ...}``.

    An image is looked up by its name as given (a batch gives the path relative to the
    input folder), then its file name, then its stem; one that is not in the file gets no
    boxes (and so no masks).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            data = json.loads(self.path.read_text())
        except OSError as exc:
            raise InputError(f"cannot read boxes file {self.path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"boxes file {self.path} is not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise InputError(f"boxes file {self.path} must map file names to lists of boxes")
        self.boxes: dict[str, Any] = data

    def __call__(self, image: np.ndarray, predictor: Predictor, name: str | None) -> np.ndarray:
        if name is None:
            raise InputError("boxes from a file need the image's file name (generate(path))")
        path = Path(name)
        keys = [k for k in (name, path.name, path.stem) if k in self.boxes]
        found: Any = self.boxes[keys[0]] if keys else []
        size = (int(image.shape[0]), int(image.shape[1]))
        return check_boxes(found, size, f"{self.path} [{name!r}]")


class YoloBoxes:
    """Boxes of an Ultralytics YOLO detector (the optional ``ultralytics`` package).

    Defaults are MobileSAMv2's: conf 0.4, NMS IoU 0.9, at most 320 boxes, box sides within
    20 px of the border snapped to it. Install with ``pip install segany[yolo]``.

    A YOLO ``.pt`` file is a pickle that Ultralytics unpickles in full: it can run code, so
    load only checkpoints you trust (such as MobileSAMv2's ``ObjectAwareModel.pt``).
    """

    def __init__(
        self,
        path: str | Path,
        conf: float = 0.4,
        iou: float = 0.9,
        max_det: int = 320,
        border_margin: float = 20.0,
    ) -> None:
        try:
            from ultralytics import YOLO
        except ImportError:
            raise InputError(
                "YOLO prompts need the optional 'ultralytics' package (pip install ultralytics)"
            ) from None
        if not Path(path).is_file():
            raise InputError(f"YOLO checkpoint {path} does not exist")
        self.detector: Any = YOLO(str(path))  # its result types vary by version
        self.conf, self.iou, self.max_det = float(conf), float(iou), int(max_det)
        self.border_margin = float(border_margin)

    def __call__(self, image: np.ndarray, predictor: Predictor, name: str | None) -> np.ndarray:
        results = self.detector(image, conf=self.conf, iou=self.iou, max_det=self.max_det,
                                verbose=False)  # fmt: skip
        boxes: Any = results[0].boxes
        xyxy = boxes.xyxy.cpu().numpy() if len(boxes) else np.zeros((0, 4))
        if len(boxes):
            xyxy = xyxy[np.argsort(-boxes.conf.cpu().numpy(), kind="stable")]
        size = (int(image.shape[0]), int(image.shape[1]))
        if self.border_margin > 0:
            xyxy = snap_to_border(check_boxes(xyxy, size, "YOLO"), size, self.border_margin)
        return check_boxes(xyxy, size, "YOLO")


def box_source(spec: str, model_name: str | None = None) -> BoxSource:
    """The source named by ``spec``: ``head`` (the model's registered prompt head),
    ``head:PATH`` (a head trained by ``segany train prompt-head``), ``yolo:PATH`` or
    ``boxes:FILE``."""
    kind, _, arg = spec.partition(":")
    if kind == "head":
        from ..prompt_heads import load_prompt_head

        return HeadBoxes(load_prompt_head(model_name, arg or None))
    if kind == "yolo" and arg:
        return YoloBoxes(arg)
    if kind == "boxes" and arg:
        return JsonBoxes(arg)
    raise InputError(f"prompts must be head, head:PATH, yolo:PATH or boxes:FILE; got {spec!r}")
