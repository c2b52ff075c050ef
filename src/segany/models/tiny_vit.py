"""TinyViT image encoder of MobileSAM (TinyViT-5M with a SAM neck).

The module tree mirrors ``mobile_sam.modeling.tiny_vit_sam.TinyViT`` so that the official
MobileSAM checkpoint loads with ``strict=True`` (under the ``image_encoder.`` prefix), including
the unused ImageNet classification head (``norm_head``, ``head``) and the BatchNorm running
statistics. Differences from the official code, none of which changes the state dict:

* no timm dependency and no drop path (inference never needs it);
* the output grid size is derived from ``img_size`` (``img_size // 16``) instead of a fixed 64;
* the relative attention bias is gathered on every forward instead of being cached on
  ``eval()``, so it can never go stale after ``load_state_dict``;
* in eval mode each conv + BatchNorm pair runs as one convolution with folded weights,
  recomputed on every call (no cache); in train mode BatchNorm runs normally.

Layout: the convolutional stage works on BxCxHxW tensors stored channels-last, the transformer
stages on BxHxWxC tensors (windowed attention and MLP act on the last dimension).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["TinyViT", "TinyViTConfig"]

_NUM_STAGES = 4
_TOTAL_STRIDE = 16


@dataclass(frozen=True)
class TinyViTConfig:
    """Hyper-parameters of :class:`TinyViT`; the defaults are MobileSAM's TinyViT-5M.

    Stage 0 is convolutional, so ``num_heads[0]`` and ``window_sizes[0]`` are unused (kept for
    parity with the official constructor). ``img_size`` must be a multiple of 16.
    """

    img_size: int = 1024
    in_chans: int = 3
    embed_dims: tuple[int, ...] = (64, 128, 160, 320)
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (2, 4, 5, 10)
    window_sizes: tuple[int, ...] = (7, 7, 14, 7)
    mlp_ratio: float = 4.0
    mbconv_expand_ratio: float = 4.0
    local_conv_size: int = 3
    out_chans: int = 256
    num_classes: int = 1000

    @property
    def embedding_size(self) -> int:
        """Side of the output grid: ``img_size // 16``."""
        return self.img_size // _TOTAL_STRIDE

    def __post_init__(self) -> None:
        per_stage = (self.embed_dims, self.depths, self.num_heads, self.window_sizes)
        if any(len(values) != _NUM_STAGES for values in per_stage):
            raise ValueError(
                f"embed_dims, depths, num_heads and window_sizes need {_NUM_STAGES} entries each"
            )
        if self.img_size <= 0 or self.img_size % _TOTAL_STRIDE:
            raise ValueError(f"img_size must be a positive multiple of 16, got {self.img_size}")
        for dim, heads in zip(self.embed_dims[1:], self.num_heads[1:], strict=True):
            if dim % heads:
                raise ValueError(f"embed dim {dim} is not divisible by {heads} heads")
        if min(self.window_sizes[1:]) <= 0 or self.local_conv_size % 2 == 0:
            raise ValueError("window sizes must be positive and local_conv_size odd")


class ConvBN(nn.Module):
    """Bias-free Conv2d followed by BatchNorm2d (state-dict keys ``c.*`` and ``bn.*``).

    Shapes: BxC_inxHxW -> BxC_outxH'xW' with ``padding = kernel_size // 2``.
    """

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        bn_weight_init: float = 1.0,
    ) -> None:
        super().__init__()
        self.c = nn.Conv2d(
            in_chans, out_chans, kernel_size, stride, kernel_size // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_chans)
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            return self.bn(self.c(x))
        # Eval: fold the running statistics into the convolution (recomputed, never cached).
        bn = self.bn
        assert bn.running_mean is not None and bn.running_var is not None
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        weight = self.c.weight * scale[:, None, None, None]
        bias = bn.bias - bn.running_mean * scale
        return F.conv2d(x, weight, bias, self.c.stride, self.c.padding, groups=self.c.groups)


class PatchEmbed(nn.Module):
    """Two stride-2 3x3 ConvBN with a GELU between: Bx(in_chans)xHxW -> BxDx(H/4)x(W/4)."""

    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            ConvBN(in_chans, embed_dim // 2, kernel_size=3, stride=2),
            nn.GELU(),
            ConvBN(embed_dim // 2, embed_dim, kernel_size=3, stride=2),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, 3x3 depthwise, 1x1 project. BxCxHxW -> BxCxHxW."""

    def __init__(self, dim: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = ConvBN(dim, hidden)
        self.conv2 = ConvBN(hidden, hidden, kernel_size=3, groups=hidden)
        self.conv3 = ConvBN(hidden, dim, bn_weight_init=0.0)

    def forward(self, x: Tensor) -> Tensor:
        y = F.gelu(self.conv2(F.gelu(self.conv1(x))))
        return F.gelu(self.conv3(y) + x)


class PatchMerging(nn.Module):
    """Downsampling between stages: BxCxHxW -> BxC_outx(H/s)x(W/s) with stride s in {1, 2}."""

    def __init__(self, dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, kernel_size=3, stride=stride, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv3(F.gelu(self.conv2(F.gelu(self.conv1(x)))))


class ConvStage(nn.Module):
    """Stage 0: MBConv blocks then a PatchMerging. BxCxHxW -> BxC_outx(H/2)x(W/2)."""

    def __init__(self, dim: int, out_dim: int, depth: int, expand_ratio: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, expand_ratio) for _ in range(depth))
        self.downsample = PatchMerging(dim, out_dim, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x)


def relative_bias_index(window_size: int) -> Tensor:
    """Index into a head's bias table for every (query, key) pair of a window.

    Tokens are numbered row-major; the pair at offset (dy, dx) uses entry
    ``|dy| * window_size + |dx|``, the same numbering as the official code's first-seen
    offset dictionary. Returns an int64 tensor of shape NxN with N = window_size ** 2.
    """
    coords = torch.arange(window_size)
    rows = coords.repeat_interleave(window_size)
    cols = coords.repeat(window_size)
    dy = (rows[:, None] - rows[None, :]).abs()
    dx = (cols[:, None] - cols[None, :]).abs()
    return dy * window_size + dx


class Attention(nn.Module):
    """Multi-head self-attention inside one window, with a learned relative position bias.

    Shapes: BxNxC -> BxNxC, with N = window_size ** 2 (B counts windows). The fused ``qkv``
    projection is laid out per head as ``[q, k, v]``, as in the official checkpoint.
    """

    attention_bias_idxs: Tensor  # NxN, non-persistent: rebuilt from window_size, not loaded

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window_size * window_size))
        self.register_buffer(
            "attention_bias_idxs", relative_bias_index(window_size), persistent=False
        )

    def forward(self, x: Tensor) -> Tensor:
        B, N, C = x.shape
        qkv = self.qkv(self.norm(x)).view(B, N, self.num_heads, 3 * self.head_dim)
        q, k, v = qkv.transpose(1, 2).split(self.head_dim, dim=-1)  # each BxheadsxNxhead_dim
        # 1xheadsxNxN: a 4-D mask lets CPU SDPA use its fused kernel (a 3-D one falls back to
        # the much slower unfused path).
        bias = self.attention_biases[:, self.attention_bias_idxs].unsqueeze(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    """Pre-norm feed-forward network: ...xC -> ...xC."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Windowed attention, depthwise local conv, MLP. BxHxWxC -> BxHxWxC (channels last).

    The grid is zero-padded at the bottom/right to a multiple of the window size before
    attention (padding tokens pass through the attention's LayerNorm, as in the official code)
    and cropped afterwards.
    """

    def __init__(
        self, dim: int, num_heads: int, window_size: int, mlp_ratio: float, local_conv_size: int
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.attn = Attention(dim, num_heads, window_size)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = ConvBN(dim, dim, kernel_size=local_conv_size, groups=dim)

    def _window_attention(self, x: Tensor) -> Tensor:
        """Attention within non-overlapping windows: BxHxWxC -> BxHxWxC."""
        B, H, W, C = x.shape
        ws = self.window_size
        pad_b, pad_r = -H % ws, -W % ws
        if pad_b or pad_r:
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        nh, nw = (H + pad_b) // ws, (W + pad_r) // ws
        windows = x.view(B, nh, ws, nw, ws, C).transpose(2, 3).reshape(-1, ws * ws, C)
        out = self.attn(windows).view(B, nh, nw, ws, ws, C).transpose(2, 3)
        return out.reshape(B, nh * ws, nw * ws, C)[:, :H, :W]

    def forward(self, x: Tensor) -> Tensor:
        x = x + self._window_attention(x)
        # A BxHxWxC tensor permuted to BxCxHxW is channels-last NCHW: no copy either way.
        x = self.local_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.mlp(x)


class TransformerStage(nn.Module):
    """TinyViT blocks then an optional PatchMerging. BxHxWxC -> BxH'xW'xC_out."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        local_conv_size: int,
        downsample: PatchMerging | None,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TinyViTBlock(dim, num_heads, window_size, mlp_ratio, local_conv_size)
            for _ in range(depth)
        )
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        if self.downsample is not None:
            x = self.downsample(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a BxCxHxW tensor."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class TinyViT(nn.Module):
    """MobileSAM image encoder: Bx(in_chans)xSxS -> Bx(out_chans)x(S/16)x(S/16), S = img_size.

    Resolutions (S = 1024): patch embedding /4 (256), stage 0 then /2 (128), stage 1 then /2
    (64), stage 2 then a stride-1 merge (64), stage 3, then the neck. The official code picks
    the stride-1 merge by its output width (320, 448 or 576); here it is always the merge into
    the last stage, which is the same for every MobileSAM configuration.
    """

    def __init__(self, config: TinyViTConfig) -> None:
        super().__init__()
        self.config = config
        self.img_size: int = config.img_size
        self.embedding_size: int = config.embedding_size
        dims = config.embed_dims

        self.patch_embed = PatchEmbed(config.in_chans, dims[0])
        layers: list[nn.Module] = [
            ConvStage(dims[0], dims[1], config.depths[0], config.mbconv_expand_ratio)
        ]
        for i in range(1, _NUM_STAGES):
            last = i == _NUM_STAGES - 1
            merge_stride = 1 if i == _NUM_STAGES - 2 else 2
            layers.append(
                TransformerStage(
                    dims[i],
                    config.depths[i],
                    config.num_heads[i],
                    config.window_sizes[i],
                    config.mlp_ratio,
                    config.local_conv_size,
                    None if last else PatchMerging(dims[i], dims[i + 1], merge_stride),
                )
            )
        self.layers = nn.ModuleList(layers)

        # ImageNet classification head: unused by SAM, kept so checkpoints load strictly.
        self.norm_head = nn.LayerNorm(dims[-1])
        self.head: nn.Module = (
            nn.Linear(dims[-1], config.num_classes) if config.num_classes > 0 else nn.Identity()
        )
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

        out = config.out_chans
        self.neck = nn.Sequential(
            nn.Conv2d(dims[-1], out, kernel_size=1, bias=False),
            LayerNorm2d(out),
            nn.Conv2d(out, out, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Encode images: Bx(in_chans)x(img_size)x(img_size) -> Bx(out_chans)xExE, E = S/16."""
        expected = (self.config.in_chans, self.img_size, self.img_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"expected a Bx{'x'.join(map(str, expected))} tensor, got {x.shape}")
        # Channels-last memory makes the convolutions faster on CPU and turns the permute to
        # BxHxWxC below into a free view.
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.layers[0](self.patch_embed(x))  # BxC1x(S/8)x(S/8)
        x = x.permute(0, 2, 3, 1).contiguous()  # BxHxWxC for the transformer stages
        for layer in self.layers[1:]:
            x = layer(x)
        # The neck's dense 3x3 conv is much less accurate in fp32 on channels-last input
        # (docs/benchmarks.md, 'SegAny predictor vs the official `SamPredictor`').
        return self.neck(x.permute(0, 3, 1, 2).contiguous())
