"""The composed SAM model: image encoder + prompt encoder + mask decoder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder
from .tiny_vit import TinyViT, TinyViTConfig
from .transformer import TwoWayTransformer
from .vit import ImageEncoderViT, ViTConfig

EncoderConfig = ViTConfig | TinyViTConfig

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class SamConfig:
    """Everything needed to build a :class:`Sam` (the published models use the defaults
    apart from ``encoder``)."""

    encoder: EncoderConfig
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_num_heads: int = 8
    decoder_mlp_dim: int = 2048
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    pixel_mean: tuple[float, float, float] = IMAGENET_MEAN
    pixel_std: tuple[float, float, float] = IMAGENET_STD

    @property
    def image_size(self) -> int:
        """Side of the square, padded encoder input."""
        return self.encoder.img_size

    @property
    def embedding_size(self) -> int:
        """Side of the image embedding (image_size / 16)."""
        if isinstance(self.encoder, TinyViTConfig):
            return self.encoder.img_size // 16
        return self.encoder.embedding_size

    @property
    def low_res_size(self) -> int:
        """Side of the decoder's low-resolution mask logits (4x the embedding)."""
        return 4 * self.embedding_size


class Sam(nn.Module):
    """Segment Anything: predicts object masks from an image and prompts.

    Built from its parts (see :func:`build_sam`); the predictor and mask generators
    wrap it. Input images are normalised with ``pixel_mean``/``pixel_std`` and padded
    to ``image_size`` on the right and bottom.
    """

    mask_threshold: float = 0.0
    image_format: str = "RGB"

    def __init__(
        self,
        image_encoder: nn.Module,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        pixel_mean: tuple[float, float, float] = IMAGENET_MEAN,
        pixel_std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.pixel_mean: torch.Tensor
        self.pixel_std: torch.Tensor
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        self.config: SamConfig | None = None
        self.name: str = "custom"
        self.is_random: bool = True  # set False once real weights are loaded
        # sha256 of the published weights file that load_model filled it with (None:
        # random weights or a file of the user's): which weights these are
        self.weights_sha256: str | None = None
        self.mode: str = "exact"  # see segany.engine.apply_mode
        # The fast mode's compiled encoder (e.g. OpenVINO), used instead of image_encoder.
        self.fast_encoder: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def image_size(self) -> int:
        """Side of the square encoder input."""
        return int(getattr(self.image_encoder, "img_size"))  # noqa: B009

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise and pad: 1x3xhxw (resized, long side = image_size) -> 1x3xSxS."""
        return preprocess(x, self.pixel_mean, self.pixel_std, self.image_size)

    def postprocess_masks(
        self,
        masks: torch.Tensor,
        input_size: tuple[int, int],
        original_size: tuple[int, int],
    ) -> torch.Tensor:
        """Low-res logits BxCxhxw -> logits at the original image size BxCxHxW (see
        :func:`postprocess_masks`)."""
        return postprocess_masks(masks, self.image_size, input_size, original_size)


def preprocess(
    x: torch.Tensor, pixel_mean: torch.Tensor, pixel_std: torch.Tensor, image_size: int
) -> torch.Tensor:
    """Normalise 1x3xhxw (3x1x1 mean and std) and pad on the right and bottom to SxS."""
    x = (x - pixel_mean) / pixel_std
    height, width = x.shape[-2:]
    return F.pad(x, (0, image_size - width, 0, image_size - height))


def postprocess_masks(
    masks: torch.Tensor,
    image_size: int,
    input_size: tuple[int, int],
    original_size: tuple[int, int],
) -> torch.Tensor:
    """Low-res logits BxCxhxw -> logits at the original image size BxCxHxW.

    Arguments:
      masks (torch.Tensor): decoder output.
      image_size (int): side S of the padded encoder input.
      input_size (tuple): (h, w) of the resized image before padding.
      original_size (tuple): (H, W) of the original image.
    """
    # The official code upsamples the whole padded frame, then crops. Upsampling only the
    # low-res rows and columns the crop reads (plus two for the bilinear neighbours and
    # the border clamp) gives the same values: every kept output pixel is computed from
    # the same two source pixels with the same weights (the scale is the same exact
    # power of two either way).
    low_h, low_w = masks.shape[-2:]
    factor = image_size // low_h
    if factor * low_h == image_size and factor * low_w == image_size:
        rows = min(low_h, -(-input_size[0] // factor) + 2)
        cols = min(low_w, -(-input_size[1] // factor) + 2)
        masks = F.interpolate(
            masks[..., :rows, :cols], scale_factor=factor, mode="bilinear", align_corners=False
        )
    else:
        masks = F.interpolate(masks, (image_size, image_size), mode="bilinear", align_corners=False)
    masks = masks[..., : input_size[0], : input_size[1]]
    if tuple(original_size) == tuple(input_size):
        return masks  # resampling to the same size is the identity (weights 1 and 0)
    return F.interpolate(masks, original_size, mode="bilinear", align_corners=False)


def build_encoder(config: EncoderConfig) -> nn.Module:
    """An image encoder for ``config`` (ViT or TinyViT)."""
    if isinstance(config, ViTConfig):
        return ImageEncoderViT(config)
    if isinstance(config, TinyViTConfig):
        return TinyViT(config)
    raise TypeError(f"unknown encoder config {type(config).__name__}")


def build_sam(config: SamConfig) -> Sam:
    """Build an (untrained) :class:`Sam` from its config, in eval mode."""
    if config.encoder.out_chans != config.prompt_embed_dim:
        raise ValueError("encoder.out_chans must equal prompt_embed_dim")
    grid = config.embedding_size
    model = Sam(
        image_encoder=build_encoder(config.encoder),
        prompt_encoder=PromptEncoder(
            embed_dim=config.prompt_embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(config.image_size, config.image_size),
            mask_in_chans=config.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=config.prompt_embed_dim,
            transformer=TwoWayTransformer(
                depth=config.decoder_depth,
                embedding_dim=config.prompt_embed_dim,
                num_heads=config.decoder_num_heads,
                mlp_dim=config.decoder_mlp_dim,
            ),
            num_multimask_outputs=config.num_multimask_outputs,
            iou_head_depth=config.iou_head_depth,
            iou_head_hidden_dim=config.iou_head_hidden_dim,
        ),
        pixel_mean=config.pixel_mean,
        pixel_std=config.pixel_std,
    )
    model.config = config
    return model.eval()
