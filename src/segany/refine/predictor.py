"""A :class:`~segany.predictor.Predictor` with mask stages after its decoder.

:class:`StagedPredictor` answers the same ``predict`` call as the predictor it wraps, and
passes the network's answer through its :class:`~segany.refine.stages.Stages`: the
refiner corrects the low-res logits, the graph cut snaps the full-size masks, a ranker
re-scores the snapped masks (so ``scores`` are the ranker's predicted IoU of the masks
returned) and a click is also answered on zoomed crops. The wrapped predictor is used
through its public interface only, and is left as it was.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import engine
from ..data.images import load_image
from ..embedding import Embedding, remember
from ..models.sam import Sam
from ..predictor import Prediction, Predictor, joined
from ..prompts import Prompts
from .graph_cut import threaded_map
from .ranker import CANDIDATES, MaskRanker, box_cut_candidates
from .stages import Stages
from .zoom import frame_of, resample_logits


@dataclass(frozen=True)
class StageView:
    """What the stages read of one image (or crop) beside its embedding.

    image: HxWx3 uint8 (graph cut, zoom); pixels: 1x(3·s²)xLxL, the refiner's view of the
    preprocessed image (None without a refiner).
    """

    image: np.ndarray
    pixels: torch.Tensor | None


class StagedPredictor:
    """``predictor``'s answers passed through ``stages``.

    Arguments:
      predictor (Predictor): the network's predictor (its cache options apply).
      stages (Stages): the stages to run (:func:`segany.refine.registered_stages` gives
        the ones trained with a model's published weights). With a "fast" model the
        refiner runs as a bf16 copy.

    ``set_image``, ``predict`` and the image properties are the predictor's; ``scores``
    are the ranker's when one runs.
    """

    def __init__(self, predictor: Predictor, stages: Stages) -> None:
        if not isinstance(predictor, Predictor):
            raise TypeError(f"StagedPredictor wraps a segany Predictor, got {predictor!r}")
        self.predictor = predictor
        refiner = stages.refiner
        if refiner is not None and engine.mode_of(predictor.model) == "fast":  # type: ignore[arg-type]
            refiner = copy.deepcopy(refiner).to(torch.bfloat16)  # faster; masks agree closely
        if refiner is not None:
            refiner.eval()
        for ranker in (stages.ranker, stages.box_ranker):
            if ranker is not None:
                ranker.eval()
        self.stages = replace(stages, refiner=refiner)
        self._views: OrderedDict[str, StageView] = OrderedDict()
        self._crops: OrderedDict[tuple[str, tuple[int, ...]], tuple[Embedding, StageView]]
        self._crops = OrderedDict()
        self._crop_view: StageView | None = None

    # ----------------------------------------------------------------- image
    @property
    def model(self) -> Sam | engine.Runtime:
        """The predictor's model."""
        return self.predictor.model

    def set_image(self, image: np.ndarray | Image.Image | str | Path) -> None:
        """Encode ``image`` (as :meth:`Predictor.set_image`) and keep what the stages read."""
        array = load_image(image)
        self.predictor.set_image(array)
        key = self.predictor.current.key
        view = self._views.get(key) or self._view_of(array)
        remember(self._views, key, view, max(self.predictor.cache_size, 1))

    def _view_of(self, array: np.ndarray) -> StageView:
        pixels = None
        if self.stages.refiner is not None:
            with torch.inference_mode():
                pixels = self.stages.refiner.pixel_grid(self.predictor.input_tensor(array))
        return StageView(image=array, pixels=pixels)

    def reset_image(self) -> None:
        self.predictor.reset_image()

    @property
    def is_image_set(self) -> bool:
        return self.predictor.is_image_set

    @property
    def original_size(self) -> tuple[int, int]:
        return self.predictor.original_size

    @property
    def input_size(self) -> tuple[int, int]:
        return self.predictor.input_size

    def get_image_embedding(self) -> torch.Tensor:
        return self.predictor.get_image_embedding()

    @property
    def view(self) -> StageView:
        """What the stages read of the image prompts are answered on now."""
        if self._crop_view is not None:
            return self._crop_view
        view = self._views.get(self.predictor.current.key)
        if view is None:
            raise RuntimeError("set the image with StagedPredictor.set_image, not its predictor's")
        return view

    @property
    def preferred_box_masks(self) -> int:
        """Masks a box is best answered with: 3 when a box ranker picks among its snapped
        masks, else 1 (the decoder's own pick of 3 is worse than its single mask)."""
        ranked = self.stages.graph_cut is not None and self.stages.box_ranker is not None
        return 3 if ranked else 1

    def crop(self, rect: tuple[int, int, int, int]) -> tuple[Embedding, StageView]:
        """The embedding and view of the XYXY crop ``rect`` of the current image (kept,
        LRU, up to the zoom's ``cache_size``)."""
        key = (self.predictor.current.key, rect)
        cached = self._crops.get(key)
        if cached is None:
            x0, y0, x1, y1 = rect
            array = np.ascontiguousarray(self.view.image[y0:y1, x0:x1])
            cached = (self.predictor.encode(array), self._view_of(array))
        zoom = self.stages.zoom
        remember(self._crops, key, cached, zoom.cache_size if zoom is not None else 0)
        return cached

    @contextmanager
    def viewing(self, embedding: Embedding, view: StageView) -> Iterator[None]:
        """Prompts answered inside the block are answered on ``embedding``'s image."""
        previous, self._crop_view = self._crop_view, view
        try:
            with self.predictor.viewing(embedding):
                yield
        finally:
            self._crop_view = previous

    # --------------------------------------------------------------- prompts
    def predict(
        self,
        points: np.ndarray | list | None = None,
        labels: np.ndarray | list | None = None,
        box: np.ndarray | list | None = None,
        mask_input: np.ndarray | None = None,
        multimask: bool = True,
        return_logits: bool = False,
    ) -> Prediction:
        """:meth:`Predictor.predict`, the answer passed through the stages."""
        prompts = self.predictor.check_prompts(points, labels, box, mask_input)
        zoomed = self.stages.zoom is not None and prompts.points is not None
        if zoomed and prompts.boxes is None and not return_logits:
            return self.answer_zoomed(prompts, multimask)
        return self.answer(prompts, multimask, return_logits)

    def answer(self, prompts: Prompts, multimask: bool, return_logits: bool = False) -> Prediction:
        """:meth:`predict` for checked ``prompts``, on the current image alone (no zoom)."""
        outputs = [
            self._answer_chunk(prompts, start, multimask, return_logits)
            for start in range(0, prompts.num_prompts, self.predictor.box_batch_size)
        ]
        return joined(outputs, prompts)

    @torch.inference_mode()
    def _answer_chunk(
        self, prompts: Prompts, start: int, multimask: bool, return_logits: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        tensors = self.predictor.prompt_tensors(prompts, start)
        logits, iou = self.predict_low_res(*tensors, multimask)
        current = self.predictor.current
        model = self.predictor.model
        found_t = model.postprocess_masks(logits, current.input_size, current.original_size)
        if not return_logits:
            found_t = found_t > model.mask_threshold
        found, ious = found_t.cpu().numpy(), iou.float().cpu().numpy()
        if not return_logits:
            found, ious = self._snap_and_rank(found, ious, prompts, start)
        return found, ious, logits.cpu().numpy()

    def _snap_and_rank(
        self, found: np.ndarray, ious: np.ndarray, prompts: Prompts, start: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """BxCxHxW masks of the prompts from ``start`` snapped by the graph cut and their
        BxC scores from the ranker, when those stages run."""
        if self.stages.graph_cut is None:
            return found, ious
        count = len(found)
        boxes = prompts.boxes[start : start + count] if prompts.boxes is not None else None
        ranker = self.ranker_for(prompts) if found.shape[1] == CANDIDATES else None
        if ranker is not None and ranker.config.kind == "box_cut" and boxes is not None:
            found, snapped = self._box_cuts(found, boxes)
        else:
            raw = found.copy() if ranker is not None else found
            snapped = self.stages.graph_cut.snap_all(
                self.view.image, raw, prompts.points, prompts.labels, boxes,
                torch.get_num_threads(),
            )  # fmt: skip
        if ranker is not None:
            given = boxes if boxes is not None else [None] * count
            clicks = None
            if prompts.points is not None and prompts.labels is not None:
                clicks = (prompts.points, prompts.labels)
            answers = zip(ious, found, snapped, given, strict=True)
            ious = np.stack([ranker.rank(*answer, clicks) for answer in answers])
        return snapped, ious

    def ranker_for(self, prompts: Prompts) -> MaskRanker | None:
        """The ranker of ``prompts``' snapped masks: the box ranker for boxes alone (when
        there is one), else the click ranker (None if it needs clicks and there are none)."""
        ranker = self.stages.ranker
        if prompts.points is None:
            if prompts.boxes is not None and self.stages.box_ranker is not None:
                return self.stages.box_ranker
            if ranker is not None and ranker.config.kind == "clicks":
                return None
        return ranker

    def _box_cuts(self, masks: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The raw and snapped BxCxHxW candidates of B ``boxes`` (Bx4) alone, from their
        decoder ``masks``, as a box-cut ranker reads them (:func:`box_cut_candidates`)."""
        image, graph_cut = self.view.image, self.stages.graph_cut
        assert graph_cut is not None  # (a ranker runs after a cut)
        threads = torch.get_num_threads()  # over the boxes, or a single box's cuts
        inner = threads if len(boxes) == 1 else 1
        pairs = threaded_map(
            lambda b: box_cut_candidates(graph_cut, image, masks[b], boxes[b], inner),
            range(len(boxes)),
            threads,
        )
        return np.stack([r for r, _ in pairs]), np.stack([s for _, s in pairs])

    @torch.inference_mode()
    def predict_low_res(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`Predictor.predict_low_res`, corrected by the refiner when there is one.

        Returns:
          low-res logits BxCxhxw and predicted IoU BxC.
        """
        logits, iou = self.predictor.predict_low_res(
            point_coords, point_labels, boxes, mask_input, multimask_output
        )
        refiner, pixels = self.stages.refiner, self.view.pixels
        if refiner is not None and pixels is not None:
            logits = refiner(pixels, logits, point_coords, point_labels, boxes)
        return logits, iou

    def answer_zoomed(self, prompts: Prompts, multimask: bool) -> Prediction:
        """The answer to click ``prompts`` (no box) on the current image and on the crops
        of the zoom: the answer whose best score is highest, its masks pasted into the
        image (CxHxW) and its low-res logits resampled into the image's frame."""
        zoom = self.stages.zoom
        assert zoom is not None and prompts.points is not None and prompts.labels is not None
        best = self.answer(prompts, multimask)
        height, width = self.predictor.original_size
        cells = best.low_res_logits.shape[-1]
        whole = frame_of((0, 0, width, height), cells)
        for rect in zoom.crops((height, width), prompts.points, prompts.labels):
            x0, y0, x1, y1 = rect
            frame = frame_of(rect, cells)
            points = prompts.points - np.array([x0, y0], dtype=np.float64)
            inside = np.all((points >= 0) & (points < [x1 - x0, y1 - y0]), axis=1)
            mask_input = prompts.mask_input
            if mask_input is not None:
                mask_input = resample_logits(torch.from_numpy(mask_input), whole, frame).numpy()
            crop_prompts = Prompts(points[inside], prompts.labels[inside], None, mask_input, False)
            with self.viewing(*self.crop(rect)):
                answer = self.answer(crop_prompts, multimask)
            if answer.scores.max() <= best.scores.max():
                continue
            masks = np.zeros((len(answer.masks), height, width), dtype=bool)
            masks[:, y0:y1, x0:x1] = answer.masks
            logits = resample_logits(torch.from_numpy(answer.low_res_logits)[None], frame, whole)
            best = replace(answer, masks=masks, low_res_logits=logits[0].numpy())
        return best
