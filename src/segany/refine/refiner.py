"""A colour-model refiner: corrects the mask decoder's low-res logits from the pixels.

SAM's decoder sees the image only through the encoder's 16x-downsampled embedding, and a
small encoder trained on few scenes learns "a blob in the box" more than the object's
exact extent. GrabCut shows how much the colours alone say (docs/training.md, "What
holds the model back"). This stage adds that: per prompt, at the
grid of the low-res logits (LxL, stride s = image_size / L), a small residual net of
dilated convolutions reads

* the current logits, the prompt's region (its box, or around the mask and the clicks)
  and the clicks (positive, negative);
* the image, pixel-unshuffled to the grid (3·s² channels: every pixel's colour);
* a colour model, as one step of GrabCut's EM: each cell's squared colour distance to
  the mean colour of the mask and of the region's rest, raw and 3x3-smoothed

and adds a correction to the logits. ``iterations`` > 1 repeats the step with the colour
model re-estimated from the corrected mask (shared weights), as GrabCut iterates. The head
starts at zero, so an untrained refiner returns the decoder's logits unchanged.

The refiner is segany's own; the official SAM classes have no such stage, so the parity
tests and the ONNX export cover the network without it (a plain ``Predictor``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

AFFINITY_CHANNELS = 6
PROMPT_CHANNELS = 4  # logits, region, positive clicks, negative clicks
REGION_MARGIN = 4  # cells of surround around a box (and around a clicked mask)
CROP_MARGIN = 24  # cells kept around the prompts' regions at inference (receptive field: 17)


@dataclass(frozen=True)
class RefinerConfig:
    """Shape of a :class:`MaskRefiner` (saved with its weights)."""

    stride: int = 4  # input pixels per low-res cell
    width: int = 32
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1)
    iterations: int = 2


def weighted_distance(colour: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Bx1xLxL squared distance of each cell's colour (Bx3xLxL or 1x3xLxL) to the mean
    colour under ``weight`` (Bx1xLxL)."""
    mean = (weight * colour).sum((2, 3), keepdim=True)
    mean = mean / weight.sum((2, 3), keepdim=True).clamp(min=1e-3)
    return ((colour - mean) ** 2).sum(1, keepdim=True)


def colour_affinity(
    cells: torch.Tensor, logits: torch.Tensor, region: torch.Tensor
) -> torch.Tensor:
    """Bx6xLxL: distances to the mask's and the surround's mean colour, and their gap.

    Arguments:
      cells: 1x3xLxL mean colour per cell. logits, region: Bx1xLxL.
    """
    prob = logits.detach().sigmoid()
    around = F.max_pool2d(region, 2 * REGION_MARGIN + 1, 1, REGION_MARGIN)
    features = []
    for colour in (cells, F.avg_pool2d(cells, 3, 1, 1)):
        inside = weighted_distance(colour, prob * region)
        outside = weighted_distance(colour, (1 - prob) * around)
        features += [inside / 4, outside / 4, (outside - inside) / 4]
    return torch.cat(features, 1)


def box_region(boxes: torch.Tensor, side: int, stride: int) -> torch.Tensor:
    """Bx1xLxL: 1 on the cells whose centre lies in the XYXY box (Bx4, input frame)."""
    centres = (torch.arange(side, device=boxes.device) + 0.5) * stride
    xs, ys = centres[None, None, :], centres[None, :, None]
    b = boxes[:, :, None, None].float()
    inside = (xs >= b[:, 0]) & (xs <= b[:, 2] + 1) & (ys >= b[:, 1]) & (ys <= b[:, 3] + 1)
    return inside[:, None].float()


def click_maps(points: torch.Tensor, labels: torch.Tensor, side: int, stride: int) -> torch.Tensor:
    """Bx2xLxL: Gaussian bumps (σ = 1 cell) at the positive and at the negative clicks.

    Arguments:
      points: BxNx2 (x, y) in the input frame, N ≥ 1. labels: BxN (1 object, 0 background;
        other values, such as SAM's -1 padding and box corners, are ignored).
    """
    centres = torch.arange(side, device=points.device, dtype=torch.float32) + 0.5
    cx = points[..., 0:1].float() / stride  # BxNx1
    cy = points[..., 1:2].float() / stride
    dx = (centres[None, None] - cx) ** 2  # BxNxL
    dy = (centres[None, None] - cy) ** 2
    bumps = torch.exp(-(dy[..., :, None] + dx[..., None, :]) / 2)  # BxNxLxL
    planes = []
    for value in (1, 0):
        chosen = (labels == value).float()[..., None, None]
        planes.append((bumps * chosen).amax(1))
    return torch.stack(planes, 1)


class MaskRefiner(nn.Module):
    """Residual dilated convolutions over the prompt, the pixels and a colour model."""

    def __init__(self, config: RefinerConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or RefinerConfig()
        channels = PROMPT_CHANNELS + 3 * config.stride**2 + AFFINITY_CHANNELS
        self.stem = nn.Conv2d(channels, config.width, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Conv2d(config.width, config.width, 3, padding=d, dilation=d)
            for d in config.dilations
        )
        self.norms = nn.ModuleList(nn.GroupNorm(4, config.width) for _ in config.dilations)
        self.head = nn.Conv2d(config.width, 1, 1)
        for parameter in self.head.parameters():
            nn.init.zeros_(parameter)  # starts as the identity
        self.to(memory_format=torch.channels_last)  # faster convolutions on a CPU

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor]) -> MaskRefiner:
        """A refiner shaped by the config saved in ``state_dict`` (see :meth:`export`)."""
        state = dict(state_dict)
        meta = state.pop("config", None)
        if meta is None:
            raise ValueError("no 'config' entry: not a segany mask refiner")
        stride, width, iterations, *dilations = (int(v) for v in meta.tolist())
        refiner = cls(RefinerConfig(stride, width, tuple(dilations), iterations))
        refiner.load_state_dict(state)
        return refiner.eval()

    def export(self) -> dict[str, torch.Tensor]:
        """The state dict plus its config as a tensor (a safetensors file holds only tensors)."""
        c = asdict(self.config)
        meta = [c["stride"], c["width"], c["iterations"], *c["dilations"]]
        return {k: v.detach().clone() for k, v in self.state_dict().items()} | {
            "config": torch.tensor(meta, dtype=torch.int64)
        }

    def pixel_grid(self, image: torch.Tensor) -> torch.Tensor:
        """1x(3·s²)xLxL: the preprocessed, padded 1x3xSxS image unshuffled to the grid."""
        return F.pixel_unshuffle(image.float(), self.config.stride)

    def step(
        self, pixels: torch.Tensor, logits: torch.Tensor, region: torch.Tensor, clicks: torch.Tensor
    ) -> torch.Tensor:
        """One correction. pixels: 1x(3·s²)xLxL; logits, region: Bx1xLxL; clicks: Bx2xLxL."""
        height, width = pixels.shape[-2:]
        cells = pixels.reshape(1, 3, self.config.stride**2, height, width).mean(2)
        parts = [
            logits.clamp(-20, 20) / 10,
            region,
            clicks,
            pixels.expand(len(logits), -1, -1, -1),
            colour_affinity(cells, logits, region),
        ]
        stacked = torch.cat(parts, 1).to(self.stem.weight.dtype)  # bf16 in "fast" mode
        hidden = F.gelu(self.stem(stacked.contiguous(memory_format=torch.channels_last)))
        for conv, norm in zip(self.blocks, self.norms, strict=True):
            hidden = hidden + F.gelu(norm(conv(hidden)))
        return logits + self.head(hidden).float()

    def forward(
        self,
        pixels: torch.Tensor,
        logits: torch.Tensor,
        point_coords: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        all_iterations: bool = False,
        crop_margin: int | None = CROP_MARGIN,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Refine a decoder's low-res logits for the prompts that produced them.

        Arguments:
          pixels: 1x(3·s²)xLxL from :meth:`pixel_grid`.
          logits: BxCxLxL (C masks per prompt: all are refined).
          point_coords: BxNx2 and point_labels: BxN in the input frame, or None.
          boxes: Bx4 XYXY in the input frame, or None.
          all_iterations: return the logits after every iteration (for training).
          crop_margin: refine only the window around all prompts' regions plus this many
            cells (outside it the logits are the decoder's: small objects cost a fraction
            of the grid); None refines the whole grid.

        Returns:
          BxCxLxL refined logits (a list of them with ``all_iterations``).
        """
        batch, count, side = logits.shape[0], logits.shape[1], logits.shape[-1]
        stride = self.config.stride
        flat = logits.reshape(batch * count, 1, side, side).float()
        if point_coords is not None and point_labels is not None and point_coords.shape[1]:
            clicks = click_maps(point_coords, point_labels, side, stride)
        else:
            clicks = flat.new_zeros(batch, 2, side, side)
        clicks = clicks.repeat_interleave(count, 0)
        if boxes is not None:
            region = box_region(boxes, side, stride).repeat_interleave(count, 0)
        else:  # around the mask and the positive clicks
            seed = ((flat > 0).float() + (clicks[:, :1] > 0.5).float()).clamp(max=1)
            region = F.max_pool2d(seed, 2 * REGION_MARGIN + 1, 1, REGION_MARGIN)
        rows, cols = _window(region, crop_margin)
        window = (..., rows, cols)
        outputs = []
        current = flat[window]
        for _ in range(self.config.iterations):
            current = self.step(pixels[window], current, region[window], clicks[window])
            full = flat.clone()
            full[window] = current
            outputs.append(full.reshape(batch, count, side, side))
        return outputs if all_iterations else outputs[-1]


def _window(region: torch.Tensor, margin: int | None) -> tuple[slice, slice]:
    """Rows and columns of the cells within ``margin`` of any region (Bx1xLxL)."""
    side = region.shape[-1]
    occupied = region.amax((0, 1)) > 0
    rows, cols = occupied.any(1).nonzero()[:, 0], occupied.any(0).nonzero()[:, 0]
    if margin is None or not len(rows):
        return slice(0, side), slice(0, side)
    return (
        slice(max(int(rows[0]) - margin, 0), min(int(rows[-1]) + margin + 1, side)),
        slice(max(int(cols[0]) - margin, 0), min(int(cols[-1]) + margin + 1, side)),
    )
