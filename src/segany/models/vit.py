"""SAM's ViT image encoder (ViTDet-style: windowed and global attention blocks).

State-dict compatible with the official ``segment_anything`` image encoder, so the
published ``sam_vit_{b,l,h}`` checkpoints load unchanged; every size is a config field so
small test and training models use the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm2d, MLPBlock


@dataclass(frozen=True)
class ViTConfig:
    """Hyper-parameters of :class:`ImageEncoderViT`.

    The defaults are SAM ViT-B at 1024x1024 input.
    """

    img_size: int = 1024
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    out_chans: int = 256
    qkv_bias: bool = True
    use_abs_pos: bool = True
    use_rel_pos: bool = True
    window_size: int = 14
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)

    @property
    def embedding_size(self) -> int:
        """Side of the output feature map (tokens per side)."""
        return self.img_size // self.patch_size


class ImageEncoderViT(nn.Module):
    """ViT backbone plus SAM's neck.

    Input: Bx3xSxS normalised, padded image (S = config.img_size).
    Output: Bx(out_chans)x(S/patch)x(S/patch) image embedding.
    """

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.img_size = config.img_size
        self.embedding_size = config.embedding_size
        grid = config.embedding_size
        self.patch_embed = PatchEmbed(config.patch_size, config.in_chans, config.embed_dim)
        self.pos_embed: nn.Parameter | None = None
        if config.use_abs_pos:
            self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, config.embed_dim))
        self.blocks = nn.ModuleList()
        for i in range(config.depth):
            is_global = i in config.global_attn_indexes
            self.blocks.append(
                Block(
                    dim=config.embed_dim,
                    num_heads=config.num_heads,
                    mlp_ratio=config.mlp_ratio,
                    qkv_bias=config.qkv_bias,
                    use_rel_pos=config.use_rel_pos,
                    window_size=0 if is_global else config.window_size,
                    input_size=(grid, grid),
                )
            )
        self.neck = nn.Sequential(
            nn.Conv2d(config.embed_dim, config.out_chans, kernel_size=1, bias=False),
            LayerNorm2d(config.out_chans),
            nn.Conv2d(config.out_chans, config.out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(config.out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Bx3xSxS -> BxCxHxW image embedding."""
        x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 3, 1, 2))


class PatchEmbed(nn.Module):
    """Non-overlapping patches to tokens: Bx3xSxS -> BxHxWxC (channels last)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class Block(nn.Module):
    """Pre-norm transformer block; windowed attention when ``window_size > 0``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        qkv_bias: bool,
        use_rel_pos: bool,
        window_size: int,
        input_size: tuple[int, int],
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        attn_size = input_size if window_size == 0 else (window_size, window_size)
        self.attn = Attention(dim, num_heads, qkv_bias, use_rel_pos, attn_size)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio), nn.GELU)
        self.window_size = window_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """BxHxWxC -> BxHxWxC."""
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            height, width = x.shape[1], x.shape[2]
            windows, padded = window_partition(x, self.window_size)
            x = window_unpartition(self.attn(windows), self.window_size, padded, (height, width))
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class Attention(nn.Module):
    """Multi-head attention over a 2-D token grid with decomposed relative positions.

    The relative-position terms (MViTv2) are added to the attention logits.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool,
        use_rel_pos: bool,
        input_size: tuple[int, int],
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        # False: the official operation order (exact). True: one fused attention kernel
        # with the relative positions as an additive mask (the fast engine sets it).
        self.fused = False
        if use_rel_pos:
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """BxHxWxC -> BxHxWxC."""
        batch, height, width, _ = x.shape
        tokens = height * width
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each B x heads x (H*W) x head_dim
        if self.fused:
            bias = None
            if self.use_rel_pos:
                bias = relative_position_bias(
                    q, self.rel_pos_h, self.rel_pos_w, (height, width), (height, width)
                )
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
            return self.proj(out.transpose(1, 2).reshape(batch, height, width, -1))
        # Same operation order as the official code, so fp32 results agree to rounding.
        logits = (q * self.scale) @ k.transpose(-2, -1)
        if self.use_rel_pos:
            logits = add_relative_positions(
                logits, q, self.rel_pos_h, self.rel_pos_w, (height, width), (height, width)
            )
        out = logits.softmax(dim=-1) @ v
        out = out.transpose(1, 2).reshape(batch, height, width, -1)
        return self.proj(out)


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Split BxHxWxC into (B*nW)xwindowxwindowxC windows, zero-padding H and W first.

    Returns the windows and the padded size (Hp, Wp).
    """
    batch, height, width, channels = x.shape
    pad_h = (window - height % window) % window
    pad_w = (window - width % window) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = height + pad_h, width + pad_w
    x = x.view(batch, hp // window, window, wp // window, window, channels)
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, channels)
    return windows, (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window: int, padded: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B*nW)xwxwxC -> BxHxWxC, padding removed."""
    hp, wp = padded
    height, width = size
    batch = windows.shape[0] // ((hp // window) * (wp // window))
    x = windows.view(batch, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(batch, hp, wp, -1)
    if hp > height or wp > width:
        x = x[:, :height, :width, :].contiguous()
    return x


def get_rel_pos(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Relative-position embeddings for every (query, key) pair along one axis.

    Arguments:
      q_size (int): number of query positions.
      k_size (int): number of key positions.
      rel_pos (torch.Tensor): Lxhead_dim table, resized linearly if L != 2*max(q,k)-1.

    Returns:
      (torch.Tensor): q_size x k_size x head_dim.
    """
    length = int(2 * max(q_size, k_size) - 1)
    if rel_pos.shape[0] != length:
        table = F.interpolate(
            rel_pos.reshape(1, rel_pos.shape[0], -1).permute(0, 2, 1), size=length, mode="linear"
        )
        table = table.reshape(-1, length).permute(1, 0)
    else:
        table = rel_pos
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * max(q_size / k_size, 1.0)
    relative = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return table[relative.long()]


def _relative_terms(
    q: torch.Tensor,
    rel_pos_h: torch.Tensor,
    rel_pos_w: torch.Tensor,
    q_size: tuple[int, int],
    k_size: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The height and width terms: (B*heads)xqhxqwxkh and (B*heads)xqhxqwxkw."""
    q_h, q_w = q_size
    k_h, k_w = k_size
    r_h = get_rel_pos(q_h, k_h, rel_pos_h).to(q.dtype)
    r_w = get_rel_pos(q_w, k_w, rel_pos_w).to(q.dtype)
    batch, heads, _, dim = q.shape
    r_q = q.reshape(batch * heads, q_h, q_w, dim)
    return torch.einsum("bhwc,hkc->bhwk", r_q, r_h), torch.einsum("bhwc,wkc->bhwk", r_q, r_w)


def relative_position_bias(
    q: torch.Tensor,
    rel_pos_h: torch.Tensor,
    rel_pos_w: torch.Tensor,
    q_size: tuple[int, int],
    k_size: tuple[int, int],
) -> torch.Tensor:
    """The decomposed relative-position terms alone, as an additive attention mask.

    Arguments as :func:`add_relative_positions`. Returns:
      (torch.Tensor): Bxheadsx(qh*qw)x(kh*kw), in ``q``'s dtype.
    """
    rel_h, rel_w = _relative_terms(q, rel_pos_h, rel_pos_w, q_size, k_size)
    bias = rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]
    return bias.reshape(q.shape[0], q.shape[1], q_size[0] * q_size[1], k_size[0] * k_size[1])


def add_relative_positions(
    logits: torch.Tensor,
    q: torch.Tensor,
    rel_pos_h: torch.Tensor,
    rel_pos_w: torch.Tensor,
    q_size: tuple[int, int],
    k_size: tuple[int, int],
) -> torch.Tensor:
    """Add decomposed relative-position terms (MViTv2) to attention logits.

    Arguments:
      logits (torch.Tensor): Bxheadsx(qh*qw)x(kh*kw) attention logits q·kᵀ·scale.
      q (torch.Tensor): Bxheadsx(qh*qw)xC queries (unscaled).
      rel_pos_h, rel_pos_w (torch.Tensor): the height and width tables.
      q_size, k_size: the (height, width) of the query and key grids.

    Returns:
      (torch.Tensor): logits + height term + width term, added in that order (as the
      official code does, so fp32 rounding agrees); ``logits`` is updated in place.
    """
    q_h, q_w = q_size
    k_h, k_w = k_size
    batch, heads = q.shape[:2]
    rel_h, rel_w = _relative_terms(q, rel_pos_h, rel_pos_w, q_size, k_size)
    grid = logits.reshape(batch * heads, q_h, q_w, k_h, k_w)
    # In place (no full-size temporaries); the same additions in the same order.
    grid.add_(rel_h[:, :, :, :, None]).add_(rel_w[:, :, :, None, :])
    return grid.reshape(batch, heads, q_h * q_w, k_h * k_w)
