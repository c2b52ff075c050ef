"""SegAny: encode an image once, then answer point/box/mask prompts in milliseconds."""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import engine
from .data.images import load_image
from .embedding import Embedding, image_key, remember
from .models.graph_cut import GraphCut, threaded_map
from .models.ranker import BOX_KINDS, CANDIDATES, MaskRanker, box_cut_candidates
from .models.refiner import MaskRefiner
from .models.sam import Sam
from .prompts import Prompts, check_prompts
from .transforms import ResizeLongestSide
from .zoom import ClickZoom, answer_zoomed


@dataclass(frozen=True)
class Prediction:
    """Masks for one prompt (or one per box).

    masks: CxHxW bool at the original image size (BxCxHxW when boxes were a Bx4 array);
    scores: C predicted IoU (BxC; the ranker's, of the snapped masks, when one is used);
    low_res_logits: Cxhxw logits (BxCxhxw), h = w = 256
    for the published models, ready to be passed back as ``mask_input``.
    """

    masks: np.ndarray
    scores: np.ndarray
    low_res_logits: np.ndarray


class Predictor:
    """Promptable segmentation with a :class:`~segany.models.Sam` model.

    Arguments:
      model (Sam): the model (see :func:`segany.load_model`), or an exported model run
        by another runtime (:class:`segany.engine.onnx_backend.OnnxSam`).
      cache_size (int): image embeddings kept (LRU, keyed by image content), so coming
        back to an image costs no encoder run.
      box_batch_size (int): boxes decoded per decoder call when many are given (small
        batches are fastest on a CPU: the per-prompt working set then stays in cache).
      refiner (MaskRefiner | "auto" | None): a colour-model stage that corrects every
        mask from the pixels (:mod:`segany.models.refiner`; predicted IoU unchanged).
        "auto" (default): the refiner registered with the model's weights, if any (the
        bundled model has one); None: the decoder's masks as they are, as the official
        predictor gives them. With a "fast" model a bf16 copy of it runs.
      graph_cut (GraphCut | "auto" | None): snap every full-size mask to the image's
        colour edges with GrabCut seeded by the mask (:mod:`segany.models.graph_cut`;
        predicted IoU and low-res logits unchanged, ``return_logits`` masks untouched).
        "auto" (default): on for registered weights that ask for it (the bundled model).
      ranker (MaskRanker | "auto" | None): with graph cut on and 3 masks per prompt, the
        scores become the ranker's predicted IoU of the *snapped* masks
        (:mod:`segany.models.ranker`), so the best-scored mask is the one most likely
        right after snapping; a click ranker (kind "clicks") reads where the prompt's
        clicks sit in each mask, a mask ranker (kind "masks") only the masks. "auto"
        (default): the ranker registered with the model's weights, if any; None: the
        decoder's scores.
      box_ranker (MaskRanker | "auto" | None): the same for prompts that are boxes alone
        (a ranker trained on boxes, ``segany train ranker --prompts boxes``); asked for 3
        masks, a box is then best answered by its best-scored one, better than by its
        single mask. A box-cut ranker (kind "box_cut", the bundled model's) answers with
        the box's own graph cut (:meth:`GraphCut.cut_box`) as the second of the 3 masks, in
        place of the decoder's second. "auto" (default): the one registered with the
        model's weights, if any; None: boxes are scored by ``ranker`` (the decoder's
        scores if that is a click ranker, which needs clicks).
    """

    def __init__(
        self,
        model: Sam | engine.Runtime,
        *,
        cache_size: int = 8,
        box_batch_size: int = 4,
        refiner: MaskRefiner | str | None = "auto",
        graph_cut: GraphCut | str | None = "auto",
        ranker: MaskRanker | str | None = "auto",
        box_ranker: MaskRanker | str | None = "auto",
        zoom: ClickZoom | str | None = "auto",
    ) -> None:
        if not isinstance(model, Sam) and not hasattr(model, "decode_prompts"):
            raise TypeError(f"Predictor needs a segany Sam model, got {type(model).__name__}")
        from . import refiners  # (imports the registry)

        stage = refiners.resolve_stage
        refiner = stage(refiner, "refiner", "MaskRefiner", refiners.registered_refiner, model)
        if refiner is not None and engine.mode_of(model) == "fast":  # type: ignore[arg-type]
            refiner = copy.deepcopy(refiner).to(torch.bfloat16)  # 1.35x; masks agree at 0.999
        self.refiner = refiner.eval() if refiner is not None else None
        self.graph_cut = stage(
            graph_cut, "graph_cut", "GraphCut", refiners.registered_graph_cut, model
        )
        ranker = stage(ranker, "ranker", "MaskRanker", refiners.registered_ranker, model)
        if ranker is not None and ranker.config.kind in BOX_KINDS:
            raise ValueError("ranker is a box ranker (it reads a box): pass it as box_ranker")
        self.ranker = ranker.eval() if ranker is not None else None
        box_ranker = stage(
            box_ranker, "box_ranker", "MaskRanker", refiners.registered_box_ranker, model
        )
        if box_ranker is not None and box_ranker.config.kind not in BOX_KINDS:
            kind = box_ranker.config.kind
            raise ValueError(f"box_ranker is a {kind} ranker, not a box ranker: pass it as ranker")
        self.box_ranker = box_ranker.eval() if box_ranker is not None else None
        self.zoom = stage(zoom, "zoom", "ClickZoom", refiners.registered_zoom, model)
        self._crops: OrderedDict[tuple[str, tuple[int, ...]], Embedding] = OrderedDict()
        self.model = model.eval()
        self.transform = ResizeLongestSide(model.image_size)
        self.cache_size = cache_size
        self.box_batch_size = box_batch_size
        self._cache: OrderedDict[str, Embedding] = OrderedDict()
        self._current: Embedding | None = None

    # ----------------------------------------------------------------- image
    def set_image(self, image: np.ndarray | Image.Image | str | Path) -> None:
        """Encode ``image`` (HxWx3 uint8 RGB array, PIL image or path) for prompting."""
        array = load_image(image)
        key = image_key(array)
        cached = self._cache.get(key)
        self._current = cached if cached is not None else self._encode(array, key)
        remember(self._cache, key, self._current, self.cache_size)
        with torch.inference_mode():
            engine.prime(self.model, self._current.features)  # fast mode: the first click

    def _encode(self, array: np.ndarray, key: str) -> Embedding:
        resized = self.transform.apply_image(array)
        tensor = torch.as_tensor(np.array(resized), device=self.model.device).permute(2, 0, 1)[None]
        with torch.inference_mode():
            x = self.model.preprocess(tensor)
            features = engine.encode(self.model, x)
            pixels = self.refiner.pixel_grid(x) if self.refiner is not None else None
        return Embedding(
            features=features,
            pixels=pixels,
            image=array if self.graph_cut is not None or self.zoom is not None else None,
            original_size=(array.shape[0], array.shape[1]),
            input_size=(resized.shape[0], resized.shape[1]),
            key=key,
        )

    def crop_embedding(self, rect: tuple[int, int, int, int]) -> Embedding:
        """The embedding of the XYXY crop ``rect`` of the current image (kept, LRU, up to
        the zoom's ``cache_size``)."""
        current = self.current
        key = (current.key, rect)
        cached = self._crops.get(key)
        if cached is None:
            if current.image is None:
                raise RuntimeError(
                    "crop_embedding needs the image kept: build the Predictor with a zoom"
                )
            x0, y0, x1, y1 = rect
            array = np.ascontiguousarray(current.image[y0:y1, x0:x1])
            cached = self._encode(array, f"{current.key}:{rect}")
        size = self.zoom.cache_size if self.zoom is not None else 0
        remember(self._crops, key, cached, size)
        return cached

    @contextmanager
    def viewing(self, embedding: Embedding) -> Iterator[None]:
        """Prompts answered inside the block are answered on ``embedding``'s image."""
        previous, self._current = self._current, embedding
        try:
            yield
        finally:
            self._current = previous

    def reset_image(self) -> None:
        """Forget the current image (the embedding cache is kept)."""
        self._current = None

    @property
    def is_image_set(self) -> bool:
        return self._current is not None

    @property
    def original_size(self) -> tuple[int, int]:
        """(H, W) of the current image."""
        return self.current.original_size

    @property
    def input_size(self) -> tuple[int, int]:
        """(h, w) of the current image resized for the encoder, before padding."""
        return self.current.input_size

    def get_image_embedding(self) -> torch.Tensor:
        """The current image's embedding: 1xCxhxw (1x256x64x64 for the published models)."""
        return self.current.features

    @property
    def current(self) -> Embedding:
        """The current image's encoding (RuntimeError when no image is set)."""
        if self._current is None:
            raise RuntimeError("An image must be set with .set_image(...) before prediction.")
        return self._current

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
        """Predict masks for prompts given in original-image pixels.

        Arguments:
          points: Nx2 (x, y) clicks. labels: N labels, 1 = object, 0 = background.
          box: one XYXY box (4,), or many (Bx4): each box is decoded as its own prompt
            (with the same points, if any) in batches of ``box_batch_size``.
          mask_input: 1xhxw low-res logits from a previous prediction (or Bx1xhxw).
          multimask: return 3 masks for ambiguous prompts instead of 1.
          return_logits: return float logits instead of boolean masks.

        Returns:
          (Prediction): masks CxHxW (BxCxHxW for a Bx4 box array), scores, low-res logits.
        """
        current = self.current
        low_res = engine.low_res_size(self.model)
        prompts = check_prompts(current.original_size, low_res, points, labels, box, mask_input)
        zoomed = self.zoom is not None and prompts.points is not None and not return_logits
        if zoomed and prompts.boxes is None:
            return answer_zoomed(self, prompts, multimask)
        return self.answer(prompts, multimask, return_logits)

    def answer(self, prompts: Prompts, multimask: bool, return_logits: bool = False) -> Prediction:
        """:meth:`predict` for checked ``prompts``, on the current image alone (no zoom)."""
        outputs = [
            self._predict_chunk(prompts, start, multimask, return_logits)
            for start in range(0, prompts.num_prompts, self.box_batch_size)
        ]
        masks, scores, logits = (np.concatenate(parts) for parts in zip(*outputs, strict=True))
        if not prompts.many_boxes:
            masks, scores, logits = masks[0], scores[0], logits[0]
        return Prediction(masks=masks, scores=scores, low_res_logits=logits)

    def _predict_chunk(
        self, prompts: Prompts, start: int, multimask: bool, return_logits: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        size = self.original_size
        stop = min(start + self.box_batch_size, prompts.num_prompts)
        count = stop - start
        coords = labels = boxes = masks = None
        if prompts.points is not None and prompts.labels is not None:
            scaled = self.transform.apply_coords(prompts.points, size)
            coords = self._tensor(scaled)[None].expand(count, -1, -1)
            labels = torch.as_tensor(prompts.labels, device=self.model.device)[None]
            labels = labels.expand(count, -1)
        if prompts.boxes is not None:
            boxes = self._tensor(self.transform.apply_boxes(prompts.boxes[start:stop], size))
        if prompts.mask_input is not None:
            chosen = (
                prompts.mask_input
                if len(prompts.mask_input) == 1
                else (prompts.mask_input[start:stop])
            )
            masks = self._tensor(chosen)
            if len(masks) != count:
                masks = masks.expand(count, -1, -1, -1)
        out_masks, scores, logits = self.predict_torch(
            coords, labels, boxes, masks, multimask, return_logits
        )
        found = out_masks.cpu().numpy()
        ious = scores.float().cpu().numpy()
        if not return_logits:
            ranker = self.ranker_for(prompts) if self.graph_cut is not None else None
            ranker = ranker if found.shape[1] == CANDIDATES else None
            if ranker is not None and ranker.config.kind == "box_cut" and prompts.boxes is not None:
                found, snapped = self._box_cuts(found, prompts.boxes[start:stop])
            else:
                snapped = self._snap(found.copy() if ranker is not None else found, prompts, start)
            if ranker is not None:
                given = prompts.boxes[start:stop] if prompts.boxes is not None else [None] * count
                clicks = None
                if prompts.points is not None and prompts.labels is not None:
                    clicks = (prompts.points, prompts.labels)
                answers = zip(ious, found, snapped, given, strict=True)
                ious = np.stack([ranker.rank(*answer, clicks) for answer in answers])
            found = snapped
        return found, ious, logits.cpu().numpy()

    def ranker_for(self, prompts: Prompts) -> MaskRanker | None:
        """The ranker of ``prompts``' snapped masks: the box ranker for boxes alone (when
        there is one), else the click ranker (None if it needs clicks and there are none)."""
        if prompts.points is None:
            if prompts.boxes is not None and self.box_ranker is not None:
                return self.box_ranker
            if self.ranker is not None and self.ranker.config.kind == "clicks":
                return None
        return self.ranker

    def _snap(self, masks: np.ndarray, prompts: Prompts, start: int) -> np.ndarray:
        """BxCxHxW masks of the prompts from ``start``, snapped by the graph cut, if any."""
        image = self.current.image
        if self.graph_cut is None or image is None:
            return masks
        boxes = prompts.boxes[start : start + len(masks)] if prompts.boxes is not None else None
        return self.graph_cut.snap_all(
            image, masks, prompts.points, prompts.labels, boxes, torch.get_num_threads()
        )

    def _box_cuts(self, masks: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The raw and snapped BxCxHxW candidates of B ``boxes`` (Bx4) alone, from their
        decoder ``masks``, as a box-cut ranker reads them (:func:`box_cut_candidates`)."""
        image, graph_cut = self.current.image, self.graph_cut
        assert image is not None and graph_cut is not None  # (a ranker runs after a cut)
        threads = torch.get_num_threads()  # over the boxes, or a single box's cuts
        inner = threads if len(boxes) == 1 else 1
        pairs = threaded_map(
            lambda b: box_cut_candidates(graph_cut, image, masks[b], boxes[b], inner),
            range(len(boxes)),
            threads,
        )
        return np.stack([r for r, _ in pairs]), np.stack([s for _, s in pairs])

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, dtype=torch.float32, device=self.model.device)

    @torch.inference_mode()
    def predict_torch(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batched prediction with prompts already in the resized frame (no checks).

        Arguments:
          point_coords: BxNx2 and point_labels: BxN, or None.
          boxes: Bx4 XYXY, or None.
          mask_input: Bx1xhxw low-res logits, or None.

        Returns:
          masks BxCxHxW (bool, or logits), iou predictions BxC, low-res logits BxCxhxw.
        """
        current = self.current
        low_res, iou = self.predict_low_res(
            point_coords, point_labels, boxes, mask_input, multimask_output
        )
        masks = self.model.postprocess_masks(low_res, current.input_size, current.original_size)
        if not return_logits:
            masks = masks > self.model.mask_threshold
        return masks, iou, low_res

    @torch.inference_mode()
    def predict_low_res(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The masks before upsampling (prompts as in :meth:`predict_torch`): the decoder's,
        corrected by the refiner when there is one.

        Returns:
          low-res logits BxCxhxw and predicted IoU BxC.
        """
        current = self.current
        logits, iou = engine.decode_prompts(
            self.model,
            current.features,
            point_coords,
            point_labels,
            boxes,
            mask_input,
            multimask_output,
        )
        if self.refiner is not None and current.pixels is not None:
            logits = self.refiner(current.pixels, logits, point_coords, point_labels, boxes)
        return logits, iou

    @torch.inference_mode()
    def predict_low_res_above(
        self,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        min_iou: float,
        multimask_output: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Like :meth:`predict_low_res`, keeping only masks with predicted IoU > ``min_iou``.

        Their masks are never computed, which is what SegEvery's IoU filter allows.

        Returns:
          kept: K flat indices into the BxC candidates; low-res logits Kxhxw of those;
          predicted IoU BxC of all candidates.
        """
        current = self.current
        return engine.decode_prompts_above(
            self.model, current.features, point_coords, point_labels, multimask_output, min_iou
        )
