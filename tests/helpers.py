"""Helpers shared by the tests (import as ``from tests.helpers import ...``)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from segany.models import SamConfig, ViTConfig

# A SAM small enough to build and run in milliseconds (64 px input, 2 blocks).
TINY = SamConfig(
    encoder=ViTConfig(
        img_size=64, embed_dim=32, depth=2, num_heads=2, window_size=2,
        global_attn_indexes=(1,), out_chans=32,
    ),
    prompt_embed_dim=32,
    decoder_num_heads=2,
    decoder_mlp_dim=64,
    iou_head_hidden_dim=32,
)  # fmt: skip


def randomize_state_dict(state_dict: dict[str, Tensor], seed: int) -> dict[str, Tensor]:
    """Return a copy of ``state_dict`` with every floating tensor replaced by random values.

    Meant for reference tests: load the result into the official model and into ours, then
    compare outputs. Values ignore the tensors' current contents, so parameters the default
    init leaves at zero or one (biases, norm scales, relative position tables) are exercised
    too, and they keep activations of order one through deep stacks:

    * ``*running_var`` (BatchNorm): uniform in [0.5, 1.5), always positive;
    * ``*running_mean``: standard normal;
    * ``*weight`` with 2+ dims (linear, conv, embedding): normal with std ``1 / sqrt(fan_in)``,
      where ``fan_in`` is the number of elements per output row (``numel / shape[0]``);
    * ``*weight`` with 1 dim (LayerNorm / BatchNorm / LayerNorm2d scales): ``1 + 0.1 * normal``;
    * ``*bias``: ``0.1 * normal``;
    * anything else (``attention_biases``, ``rel_pos_*``, ``pos_embed``, tokens, Gaussian
      positional matrices, ...): standard normal.

    Non-floating tensors (e.g. ``num_batches_tracked``) are cloned unchanged. Keys, shapes,
    dtypes and devices are preserved. Draws come from a CPU ``torch.Generator`` seeded with
    ``seed`` in key order, so the result is deterministic for a given state dict and seed.
    """
    generator = torch.Generator().manual_seed(seed)
    randomized: dict[str, Tensor] = {}
    for key, tensor in state_dict.items():
        if not tensor.is_floating_point():
            randomized[key] = tensor.clone()
            continue
        noise = torch.randn(tensor.shape, generator=generator, dtype=torch.float64)
        if key.endswith("running_var"):
            new = torch.rand(tensor.shape, generator=generator, dtype=torch.float64) + 0.5
        elif key.endswith("running_mean"):
            new = noise
        elif key.endswith("weight") and tensor.ndim >= 2:
            fan_in = max(1, tensor.numel() // max(1, tensor.shape[0]))
            new = noise / math.sqrt(fan_in)
        elif key.endswith("weight"):
            new = 1.0 + 0.1 * noise
        elif key.endswith("bias"):
            new = 0.1 * noise
        else:
            new = noise
        randomized[key] = new.to(dtype=tensor.dtype, device=tensor.device)
    return randomized
