"""SegAny: encode an image once, then answer point/box/mask prompts in milliseconds.

:class:`Predictor` is SAM's predictor (the official ``SamPredictor``'s contract) and
nothing more: its answers are what the network computes. Layers that change the answers
(the bundled model's mask stages) wrap it from outside: :mod:`segany.refine`.
"""

from __future__ import annotations

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
from .errors import NoImageError
from .models.sam import Sam
from .prompts import Prompts, check_prompts
from .transforms import ResizeLongestSide, preprocess_shape

# Options of segany 0.1's Predictor that moved to segany.refine in 0.2.0.
REMOVED_OPTIONS = ("refiner", "graph_cut", "ranker", "box_ranker", "zoom")


@dataclass(frozen=True)
class Prediction:
    """Masks for one prompt (or one per box).

    masks: CxHxW bool at the original image size (BxCxHxW when boxes were a Bx4 array);
    scores: C predicted IoU (BxC);
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
    """

    def __init__(
        self,
        model: Sam | engine.Runtime,
        *,
        cache_size: int = 8,
        box_batch_size: int = 4,
        **removed: object,
    ) -> None:
        if removed:
            _refuse_removed(removed)
        if not isinstance(model, Sam) and not hasattr(model, "decode_prompts"):
            raise TypeError(f"Predictor needs a segany Sam model, got {type(model).__name__}")
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
        self._current = cached if cached is not None else self.encode(array, key)
        remember(self._cache, key, self._current, self.cache_size)
        with torch.inference_mode():
            engine.prime(self.model, self._current.features)  # fast mode: the first click

    def input_tensor(self, image: np.ndarray) -> torch.Tensor:
        """``image`` (HxWx3 uint8) as the encoder takes it: resized so that its longest
        side is the model's input size, normalised and padded, 1x3xSxS."""
        resized = self.transform.apply_image(image)
        tensor = torch.as_tensor(np.array(resized), device=self.model.device).permute(2, 0, 1)
        with torch.inference_mode():
            return self.model.preprocess(tensor[None])

    def encode(self, image: np.ndarray, key: str | None = None) -> Embedding:
        """The embedding of ``image`` (HxWx3 uint8), computed now (no cache is read or
        written, the current image is unchanged); ``key``: its :func:`image_key`."""
        with torch.inference_mode():
            features = engine.encode(self.model, self.input_tensor(image))
        height, width = image.shape[:2]
        return Embedding(
            features=features,
            original_size=(height, width),
            input_size=preprocess_shape(height, width, self.transform.target_length),
            key=key if key is not None else image_key(image),
        )

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
    def device(self) -> torch.device:
        return self.model.device

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
        """The current image's encoding (:class:`~segany.errors.NoImageError`, a
        RuntimeError, when no image is set)."""
        if self._current is None:
            raise NoImageError("An image must be set with .set_image(...) before prediction.")
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
        prompts = self.check_prompts(points, labels, box, mask_input)
        return self.answer(prompts, multimask, return_logits)

    def check_prompts(
        self,
        points: object = None,
        labels: object = None,
        box: object = None,
        mask_input: object = None,
    ) -> Prompts:
        """:meth:`predict`'s prompts checked against the current image (``InputError``)."""
        low_res = engine.low_res_size(self.model)
        return check_prompts(self.current.original_size, low_res, points, labels, box, mask_input)

    def answer(self, prompts: Prompts, multimask: bool, return_logits: bool = False) -> Prediction:
        """:meth:`predict` for checked ``prompts``, on the current image."""
        outputs = []
        for start in range(0, prompts.num_prompts, self.box_batch_size):
            tensors = self.prompt_tensors(prompts, start)
            masks, scores, logits = self.predict_torch(*tensors, multimask, return_logits)
            outputs.append(
                (masks.cpu().numpy(), scores.float().cpu().numpy(), logits.cpu().numpy())
            )
        return joined(outputs, prompts)

    def prompt_tensors(
        self, prompts: Prompts, start: int = 0
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """The B = min(``box_batch_size``, prompts left) prompts of ``prompts`` from
        ``start`` as :meth:`predict_torch` takes them, in the resized frame: point
        coordinates BxNx2 and labels BxN, boxes Bx4, mask inputs Bx1xhxw (each or None)."""
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
            given = prompts.mask_input
            masks = self._tensor(given if len(given) == 1 else given[start:stop])
            if len(masks) != count:
                masks = masks.expand(count, -1, -1, -1)
        return coords, labels, boxes, masks

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
        """The decoder's masks before upsampling (prompts as in :meth:`predict_torch`).

        Returns:
          low-res logits BxCxhxw and predicted IoU BxC.
        """
        current = self.current
        return engine.decode_prompts(
            self.model,
            current.features,
            point_coords,
            point_labels,
            boxes,
            mask_input,
            multimask_output,
        )

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


def joined(
    outputs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], prompts: Prompts
) -> Prediction:
    """One :class:`Prediction` from the (masks BxCxHxW, scores BxC, low-res logits
    BxCxhxw) of ``prompts``' batches in order; without a box array, the one prompt's."""
    if len(outputs) == 1:  # one batch: no copy (full-size logits are megabytes)
        masks, scores, logits = outputs[0]
    else:
        masks, scores, logits = (np.concatenate(parts) for parts in zip(*outputs, strict=True))
    if not prompts.many_boxes:
        masks, scores, logits = masks[0], scores[0], logits[0]
    return Prediction(masks=masks, scores=scores, low_res_logits=logits)


def _refuse_removed(options: dict[str, object]) -> None:
    """A ``TypeError`` for keyword arguments Predictor does not take, naming what replaced
    the mask-stage options of segany 0.1."""
    names = ", ".join(sorted(options))
    if set(options) <= set(REMOVED_OPTIONS):
        raise TypeError(
            f"Predictor({names}=...) was removed in segany 0.2.0: Predictor is the bare "
            "network now, and the mask stages wrap it: "
            "segany.refine.StagedPredictor(Predictor(model), segany.refine.registered_stages"
            "(model)), or segany.refine.Stages(...) for stages of your own"
        )
    raise TypeError(f"Predictor got unexpected keyword arguments: {names}")
