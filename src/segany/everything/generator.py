"""SegEvery: masks for everything in an image, from a grid of point prompts.

:class:`MaskGenerator` takes the options of the official ``SamAutomaticMaskGenerator``
(same names, defaults and order) and returns the same records, computed with less memory:

* the predicted-IoU filter runs on the decoder's low-resolution output, before any mask is
  upsampled (it does not depend on the mask, so the survivors are the same);
* the survivors are upsampled, scored for stability, thresholded, boxed and run-length
  encoded in chunks of at most ``chunk_pixels`` full-resolution pixels, so a batch never
  holds ``points_per_batch x 3`` full-resolution float masks at once;
* between batches and crops only RLE counts (NumPy arrays) and a few numbers per mask are
  kept; masks are decoded again only for ``min_mask_region_area`` and ``binary_mask``
  output, one at a time.

The image goes through a :class:`~segany.Predictor` (``set_image`` per crop, with its
embedding cache); prompts are decoded as ``Predictor.predict_torch`` does, but the
upsampling is left to the chunks above. The tests check the records against the official
generator's on the same weights (``tests/everything/test_parity.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from segany.data.images import load_image
from segany.engine import Runtime
from segany.errors import InputError
from segany.models.sam import Sam
from segany.predictor import Predictor

from .candidates import Candidates, to_record
from .filtering import filter_decoded
from .grid import crop_boxes_for_image
from .masks import nms, uncrop_boxes, uncrop_points
from .objects import process_objects
from .options import STRATEGIES, check_int, point_grids_for
from .regions import clean_small_regions
from .sources import BoxSource, box_source

__all__ = ["OUTPUT_MODES", "MaskGenerator"]

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")
# (pred_iou_thresh, stability_score_thresh, box_nms_thresh) when not given, by strategy
FILTER_DEFAULTS = {"grid": (0.88, 0.95, 0.7), "objects": (0.0, 0.0, 1.0)}
MASKS_PER_BOX = (1, 3)


class MaskGenerator:
    """Automatic mask generation: prompt SAM with a grid of points and keep the good masks.

    Arguments (names, defaults and meaning as the official ``SamAutomaticMaskGenerator``):
      model (Sam | Predictor): the model, or a :class:`~segany.Predictor` to share its
        embedding cache.
      points_per_side (int | None): grid of ``n x n`` points on each crop; ``None`` when
        ``point_grids`` is given.
      points_per_batch (int): points decoded per decoder call.
      pred_iou_thresh (float): keep masks whose predicted IoU is ``>`` this (0 disables).
        Default: 0.88 (the official default) for the grid, 0 for ``strategy="objects"``.
      stability_score_thresh (float): keep masks whose stability is ``>=`` this (0 disables).
        Default: 0.95 (the official default) for the grid, 0 for ``strategy="objects"``:
        MobileSAMv2 filters box masks by neither, and measured AR agrees
        (docs/benchmarks.md, 'Object-aware SegEvery (MobileSAMv2) against the grid').
      stability_score_offset (float): shift of the logit cutoff for the stability score.
      box_nms_thresh (float): box IoU above which NMS drops duplicates within a crop (1
        disables). Default: 0.7 (the official default) for the grid, 1 for
        ``strategy="objects"``: the masks of one box share nearly the same box, and
        dropping them costs recall (docs/benchmarks.md, 'Three masks per box, no NMS').
      crop_n_layers (int): crop layers after the whole image; layer i has ``(2^i)^2`` crops.
      crop_nms_thresh (float): box IoU above which NMS drops duplicates between crops
        (masks from smaller crops win).
      crop_overlap_ratio (float): overlap of layer 1's crops as a fraction of the short side.
      crop_n_points_downscale_factor (int): layer i has ``points_per_side / factor^i``
        points per side.
      point_grids (list[np.ndarray] | None): explicit ``Nx2`` grids in ``[0, 1]``, one per
        layer (exclusive with ``points_per_side``).
      min_mask_region_area (int): if > 0, fill holes and remove islands smaller than this,
        then run NMS again.
      output_mode (str): ``"binary_mask"`` (HxW bool), ``"uncompressed_rle"`` (counts list)
        or ``"coco_rle"`` (compressed counts string).
      decoder_batch_size (int): keyword-only, not in the official API: prompts per decoder
        call within a batch. Results do not depend on it; on a CPU small calls are fastest,
        and the default was the fastest with MobileSAM and the bundled model
        (docs/benchmarks.md, 'The shared decoder, made faster').
      chunk_pixels (int): keyword-only, not in the official API: how many mask pixels are
        upsampled at once, counting per mask the model's square input frame (1024^2) and
        the crop; float logits take 4 bytes per pixel of it (64 MiB at the default),
        masks and stability cut-offs a few bytes more.
      strategy (str): keyword-only: ``"grid"`` (SAM's point grid, the official
        algorithm) or ``"objects"`` (MobileSAMv2's object-aware prompting: one box prompt
        per object found by ``prompts``, one mask per box; then the same filters, NMS and
        records, with ``point_coords`` the box centre and ``prompt_box`` the box, XYWH).
      prompts: keyword-only, for ``"objects"``: a box source (``source(image, predictor,
        name) -> Nx4`` XYXY, see :mod:`.sources`) or its name: ``"head"`` (default: the
        model's registered prompt head), ``"head:PATH"``, ``"yolo:PATH"``, ``"boxes:FILE"``.
      masks_per_box (int): keyword-only, for ``"objects"``: 1 (the single-mask output, as
        MobileSAMv2) or 3 (default: the three multimask outputs of each box, whole / part /
        sub-part, which finds more objects; docs/benchmarks.md, 'Three masks per box, no
        NMS').
    """

    def __init__(
        self,
        model: Sam | Runtime | Predictor,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float | None = None,
        stability_score_thresh: float | None = None,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float | None = None,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: Sequence[npt.ArrayLike] | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        *,
        decoder_batch_size: int = 8,
        chunk_pixels: int = 1 << 24,
        strategy: str = "grid",
        prompts: BoxSource | str | None = None,
        masks_per_box: int | None = None,
    ) -> None:
        if isinstance(model, Predictor):
            self.predictor = model
        elif isinstance(model, Sam) or hasattr(model, "decode_prompts"):
            self.predictor = Predictor(model)
        else:
            raise InputError(f"MaskGenerator needs a segany Sam or Predictor; got {type(model)}")
        check_int("points_per_batch", points_per_batch, 1)
        check_int("crop_n_layers", crop_n_layers, 0)
        check_int("crop_n_points_downscale_factor", crop_n_points_downscale_factor, 1)
        check_int("min_mask_region_area", min_mask_region_area, 0)
        check_int("decoder_batch_size", decoder_batch_size, 1)
        check_int("chunk_pixels", chunk_pixels, 1)
        defaults = FILTER_DEFAULTS.get(strategy, (0.0, 0.0, 1.0))  # a bad one fails below
        if pred_iou_thresh is None:
            pred_iou_thresh = defaults[0]
        if stability_score_thresh is None:
            stability_score_thresh = defaults[1]
        if box_nms_thresh is None:
            box_nms_thresh = defaults[2]
        for name, value in (
            ("pred_iou_thresh", pred_iou_thresh),
            ("stability_score_thresh", stability_score_thresh),
            ("stability_score_offset", stability_score_offset),
            ("box_nms_thresh", box_nms_thresh),
            ("crop_nms_thresh", crop_nms_thresh),
        ):
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise InputError(f"{name} must be a finite number; got {value!r}")
        if not 0 <= crop_overlap_ratio < 1:
            raise InputError(f"crop_overlap_ratio must be in [0, 1); got {crop_overlap_ratio}")
        if output_mode not in OUTPUT_MODES:
            raise InputError(f"output_mode must be one of {OUTPUT_MODES}; got {output_mode!r}")
        if strategy not in STRATEGIES:
            raise InputError(f"strategy must be one of {STRATEGIES}; got {strategy!r}")
        if strategy == "objects" and crop_n_layers:
            raise InputError("strategy='objects' prompts the whole image: use crop_n_layers=0")
        self.strategy = strategy
        self.prompts: BoxSource | None = None
        if strategy == "objects":
            model_name = getattr(self.model, "name", None)
            if callable(prompts):
                self.prompts = prompts
            else:
                self.prompts = box_source(prompts or "head", model_name)
        elif prompts is not None:
            raise InputError("prompts are for strategy='objects' (the grid makes its own)")
        if masks_per_box is not None and strategy != "objects":
            raise InputError("masks_per_box is for strategy='objects' (grid points make 3)")
        if masks_per_box is not None and masks_per_box not in MASKS_PER_BOX:
            raise InputError(f"masks_per_box must be 1 or 3; got {masks_per_box!r}")
        self.masks_per_box = 3 if masks_per_box is None else int(masks_per_box)
        self.point_grids = point_grids_for(
            points_per_side, point_grids, crop_n_layers, crop_n_points_downscale_factor
        )
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = float(pred_iou_thresh)
        self.stability_score_thresh = float(stability_score_thresh)
        self.stability_score_offset = float(stability_score_offset)
        self.box_nms_thresh = float(box_nms_thresh)
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = float(crop_nms_thresh)
        self.crop_overlap_ratio = float(crop_overlap_ratio)
        self.crop_n_points_downscale_factor = crop_n_points_downscale_factor
        self.min_mask_region_area = min_mask_region_area
        self.output_mode = output_mode
        self.decoder_batch_size = decoder_batch_size
        self.chunk_pixels = chunk_pixels

    @property
    def model(self) -> Sam | Runtime:
        return self.predictor.model

    # ------------------------------------------------------------------ public
    @torch.inference_mode()
    def generate(
        self, image: np.ndarray | Image.Image | str | Path, *, name: str | None = None
    ) -> list[dict[str, Any]]:
        """Masks for everything in ``image`` (HxWx3 uint8 RGB array, PIL image or path).

        ``name``: the image's file name (default: the path's), for box sources that look
        images up by name.

        Returns:
          One dict per mask, in the official order and format:
            ``segmentation`` (HxW bool array or RLE dict, see ``output_mode``), ``area``
            (int), ``bbox`` (XYWH ints, ``w = x1 - x0`` of the inclusive box),
            ``predicted_iou`` (float), ``point_coords`` (``[[x, y]]``), ``stability_score``
            (float), ``crop_box`` (XYWH ints).
        """
        array = load_image(image)
        if name is None and isinstance(image, str | Path):
            name = Path(image).name
        size = (int(array.shape[0]), int(array.shape[1]))
        if self.strategy == "objects":
            kept = process_objects(self, array, size, name)
        else:
            kept = self._generate_candidates(array, size)
        if self.min_mask_region_area > 0 and len(kept):
            nms_thresh = max(self.box_nms_thresh, self.crop_nms_thresh)
            kept = clean_small_regions(kept, size, self.min_mask_region_area, nms_thresh)
        return [to_record(kept, i, size, self.output_mode) for i in range(len(kept))]

    # -------------------------------------------------------------- pipeline
    def _generate_candidates(self, image: np.ndarray, size: tuple[int, int]) -> Candidates:
        crop_boxes, layers = crop_boxes_for_image(size, self.crop_n_layers, self.crop_overlap_ratio)
        kept = Candidates.concat(
            [
                self._process_crop(image, box, layer, size)
                for box, layer in zip(crop_boxes, layers, strict=True)
                if box[2] > box[0] and box[3] > box[1]  # tiny images can give empty crops
            ]
        )
        if len(crop_boxes) > 1 and len(kept):
            crops = kept.crop_boxes
            scores = 1 / ((crops[:, 2] - crops[:, 0]) * (crops[:, 3] - crops[:, 1]))
            kept = kept.select(nms(kept.boxes, scores, self.crop_nms_thresh))
        return kept

    def _process_crop(
        self, image: np.ndarray, crop_box: list[int], layer: int, size: tuple[int, int]
    ) -> Candidates:
        x0, y0, x1, y1 = crop_box
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        crop_size = (y1 - y0, x1 - x0)
        self.predictor.set_image(crop)
        points = self.point_grids[layer] * np.array(crop_size)[None, ::-1]
        parts = [
            self._process_batch(points[start : start + self.points_per_batch], crop_box, size)
            for start in range(0, len(points), self.points_per_batch)
        ]
        self.predictor.reset_image()
        found = Candidates.concat(parts)
        found = found.select(nms(found.boxes, found.iou_preds, self.box_nms_thresh))
        found.boxes = uncrop_boxes(found.boxes, crop_box)
        found.points = uncrop_points(found.points, crop_box)
        found.crop_boxes = torch.tensor([crop_box], dtype=torch.int64).expand(len(found), 4)
        return found

    def _process_batch(
        self, points: np.ndarray, crop_box: list[int], size: tuple[int, int]
    ) -> Candidates:
        """Decode ``Bx2`` points (crop frame) and keep the masks that pass every filter.

        Boxes stay in the crop's frame (for the within-crop NMS); RLEs are of whole-image
        masks.
        """
        low_res, chosen, iou_preds = self._decode(points)
        return filter_decoded(self, low_res, chosen, iou_preds, points, crop_box, size)

    def _decode(self, points: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Bx2 points in the current crop -> the candidates that pass the IoU filter.

        One positive point per prompt, three masks per point, flattened point-major; the
        decoder runs on ``decoder_batch_size`` prompts at a time and makes masks only for
        candidates whose predicted IoU passes ``pred_iou_thresh`` (the IoU head does not
        need the mask, so the survivors are the same).

        Returns:
          Kxhxw low-res logits of the survivors, their K flat indices among the 3B
          candidates, and the 3B predicted IoU of all.
        """
        predictor, model = self.predictor, self.model
        min_iou = self.pred_iou_thresh if self.pred_iou_thresh > 0.0 else -math.inf
        coords = predictor.transform.apply_coords(points, predictor.original_size)
        all_points = torch.as_tensor(coords, device=model.device)[:, None, :]
        logits, kept, scores = [], [], []
        offset = 0
        for start in range(0, len(all_points), self.decoder_batch_size):
            in_points = all_points[start : start + self.decoder_batch_size]
            in_labels = torch.ones(in_points.shape[:2], dtype=torch.int, device=model.device)
            index, low_res, iou_preds = predictor.predict_low_res_above(
                in_points, in_labels, min_iou
            )
            logits.append(low_res)
            kept.append(index + offset)
            scores.append(iou_preds.flatten(0, 1).float())
            offset += iou_preds.numel()
        return torch.cat(logits), torch.cat(kept), torch.cat(scores)
