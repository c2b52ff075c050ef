"""Build the official ``segment_anything`` / ``mobile_sam`` models from a segany config.

Used by the reference-equivalence tests: both sides are built from one config and
loaded with one random-weight state dict saved in the official (flat ``Sam``) format.
"""

from __future__ import annotations

from pathlib import Path

import torch

from segany.models import SamConfig, ViTConfig, build_sam
from segany.reference import official_sam, official_tiny_vit, official_vit
from tests.helpers import randomize_state_dict

__all__ = ["SMALL_VIT", "official_sam", "official_tiny_vit", "official_vit", "random_checkpoint"]

# A small custom ViT SAM that the official classes can also express (fast reference tests).
SMALL_VIT = SamConfig(
    encoder=ViTConfig(
        img_size=256,
        embed_dim=64,
        depth=3,
        num_heads=2,
        window_size=5,
        global_attn_indexes=(1,),
        out_chans=64,
    ),
    prompt_embed_dim=64,
    decoder_num_heads=4,
    decoder_mlp_dim=256,
    iou_head_hidden_dim=64,
)


def random_checkpoint(config: SamConfig, path: Path, seed: int) -> Path:
    """Save a random-weight checkpoint for ``config`` in the official flat format.

    Every tensor is randomised (positional embeddings and relative-position tables too),
    starting from the official module's own state dict so the key set is the official one.
    """
    with torch.device("meta"):
        ours = build_sam(config)
    official = official_sam(config)
    state = randomize_state_dict(official.state_dict(), seed)
    assert set(state) == set(ours.state_dict()), "official and segany key sets differ"
    torch.save(state, path)
    return path
