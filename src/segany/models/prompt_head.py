"""A light object-proposal head on SAM's image embedding (object-aware SegEvery).

MobileSAMv2 prompts SAM's decoder with the boxes of a separate YOLOv8 detector. This head
reads the embedding the image encoder has already computed instead, so no second
backbone runs: a CenterNet-style detector with one output group per *scale slot*, so an
object and its parts (nested, often with the same centre) do not compete for one cell.

For each embedding cell and scale slot it predicts an objectness logit (is an object's
box centre in this cell?) and the box: the centre's offset in the cell and the log width
and height in cells. Slot ``s`` takes objects whose box side ``sqrt(w*h)`` is in
``[edges[s-1], edges[s])`` cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PromptHead", "PromptHeadConfig", "decode_boxes"]


@dataclass(frozen=True)
class PromptHeadConfig:
    """Sizes of a :class:`PromptHead`.

    in_chans: channels of the image embedding (256 for SAM, 128 for ``segany_shapes``).
    hidden: channels of the two 3x3 convolutions. slot_edges: box sides (in embedding
    cells) separating the scale slots; ``len(slot_edges) + 1`` slots.
    """

    in_chans: int = 256
    hidden: int = 96
    slot_edges: tuple[float, ...] = (2.0, 6.0)

    @property
    def slots(self) -> int:
        return len(self.slot_edges) + 1


class PromptHead(nn.Module):
    """Objectness and boxes per embedding cell and scale slot.

    Input: BxCxhxw image embeddings. Output: (BxSxhxw objectness logits,
    BxSx4xhxw boxes as (dx, dy, log w, log h): centre offset in the cell in [0, 1] after a
    sigmoid, width and height in cells after an exp).
    """

    def __init__(self, config: PromptHeadConfig = PromptHeadConfig()) -> None:
        super().__init__()
        self.config = config
        hidden = config.hidden
        self.tower = nn.Sequential(
            nn.Conv2d(config.in_chans, hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.GELU(),
        )
        self.objectness = nn.Conv2d(hidden, config.slots, 1, bias=False)
        self.prior = nn.Parameter(torch.full((config.slots, 1, 1), -4.0))
        self.boxes = nn.Conv2d(hidden, config.slots * 4, 1)
        # self.prior starts low (CenterNet): most cells hold no object centre.
        # Saved with the weights, so a head file says which slots it was trained with.
        self.register_buffer("slot_edges", torch.tensor(config.slot_edges, dtype=torch.float32))

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor]) -> PromptHead:
        """A head shaped like ``state_dict`` (as saved by ``state_dict()``), loaded strictly."""
        try:
            hidden, in_chans = state_dict["tower.0.weight"].shape[:2]
            edges = tuple(float(v) for v in state_dict["slot_edges"].tolist())
        except KeyError as exc:
            raise ValueError(f"not a prompt-head state dict (no {exc.args[0]!r})") from None
        head = cls(PromptHeadConfig(in_chans=int(in_chans), hidden=int(hidden), slot_edges=edges))
        head.load_state_dict(state_dict, strict=True)
        return head

    def forward(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.tower(embedding.to(self.objectness.weight.dtype))
        b, _, h, w = x.shape
        boxes = self.boxes(x).reshape(b, self.config.slots, 4, h, w)
        return self.objectness(x) + self.prior, boxes


def decode_boxes(
    objectness: torch.Tensor,
    boxes: torch.Tensor,
    cell: float,
    conf: float,
    max_boxes: int,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Peaks of the objectness maps -> boxes in the model's input frame.

    Arguments:
      objectness: BxSxhxw logits; boxes: BxSx4xhxw (see :class:`PromptHead`).
      cell: input pixels per embedding cell (image_size / w).
      conf: keep peaks with probability >= this. max_boxes: at most this many per image.

    Returns:
      per image, (Nx4 XYXY boxes in input pixels, N scores), best first.
    """
    prob = objectness.float().sigmoid()
    peaks = prob == F.max_pool2d(prob, 3, stride=1, padding=1)
    prob = torch.where(peaks, prob, torch.zeros_like(prob))
    b, s, h, w = prob.shape
    out = []
    for i in range(b):
        flat = prob[i].flatten()
        k = min(max_boxes, flat.numel())
        scores, index = flat.topk(k)
        keep = scores >= conf
        scores, index = scores[keep], index[keep]
        slot, rest = index // (h * w), index % (h * w)
        row, col = rest // w, rest % w
        params = boxes[i].float()[slot, :, row, col]  # Nx4
        cx = (col.float() + params[:, 0].sigmoid()) * cell
        cy = (row.float() + params[:, 1].sigmoid()) * cell
        half_w = params[:, 2].clamp(max=8.0).exp() * cell / 2
        half_h = params[:, 3].clamp(max=8.0).exp() * cell / 2
        xyxy = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=1)
        out.append((xyxy, scores))
    return out
