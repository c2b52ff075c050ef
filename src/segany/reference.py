"""The official reference models (``segment_anything``, ``mobile_sam``) built from a segany config.

For side-by-side checks and benchmarks: both packages are optional (``pip install
segment-anything mobilesam-mirror``, which need torchvision); an official model built here
loads a segany state dict unchanged (the key sets are the same).
"""

from __future__ import annotations

from functools import partial

import torch

from .models import SamConfig, TinyViTConfig, ViTConfig

__all__ = ["official_sam", "official_tiny_vit", "official_vit"]


def official_tiny_vit(config: TinyViTConfig) -> torch.nn.Module:
    """The official MobileSAM encoder with the arguments of ``build_sam_vit_t``."""
    from mobile_sam.modeling import TinyViT

    return TinyViT(
        img_size=config.img_size,
        in_chans=config.in_chans,
        num_classes=config.num_classes,
        embed_dims=list(config.embed_dims),
        depths=list(config.depths),
        num_heads=list(config.num_heads),
        window_sizes=list(config.window_sizes),
        mlp_ratio=config.mlp_ratio,
        drop_rate=0.0,
        drop_path_rate=0.0,
        use_checkpoint=False,
        mbconv_expand_ratio=config.mbconv_expand_ratio,
        local_conv_size=config.local_conv_size,
        layer_lr_decay=0.8,
    )


def official_vit(config: ViTConfig) -> torch.nn.Module:
    """The official SAM ViT image encoder for ``config``."""
    from segment_anything.modeling import ImageEncoderViT

    return ImageEncoderViT(
        depth=config.depth,
        embed_dim=config.embed_dim,
        img_size=config.img_size,
        mlp_ratio=config.mlp_ratio,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        num_heads=config.num_heads,
        patch_size=config.patch_size,
        qkv_bias=config.qkv_bias,
        use_rel_pos=config.use_rel_pos,
        global_attn_indexes=list(config.global_attn_indexes),
        window_size=config.window_size,
        out_chans=config.out_chans,
    )


def official_sam(config: SamConfig) -> torch.nn.Module:
    """The official model for ``config`` (segment_anything for ViT, mobile_sam for TinyViT).

    Raises ImportError when the official package is not installed.
    """
    if isinstance(config.encoder, TinyViTConfig):
        from mobile_sam.modeling import (
            MaskDecoder,
            PromptEncoder,
            Sam,
            TwoWayTransformer,
        )

        encoder = official_tiny_vit(config.encoder)
        grid = config.encoder.img_size // 16
    else:
        from segment_anything.modeling import (
            MaskDecoder,
            PromptEncoder,
            Sam,
            TwoWayTransformer,
        )

        encoder = official_vit(config.encoder)
        grid = config.encoder.embedding_size
    dim = config.prompt_embed_dim
    model = Sam(
        image_encoder=encoder,
        prompt_encoder=PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(grid, grid),
            input_image_size=(config.image_size, config.image_size),
            mask_in_chans=config.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=config.num_multimask_outputs,
            transformer=TwoWayTransformer(
                depth=config.decoder_depth,
                embedding_dim=dim,
                mlp_dim=config.decoder_mlp_dim,
                num_heads=config.decoder_num_heads,
            ),
            transformer_dim=dim,
            iou_head_depth=config.iou_head_depth,
            iou_head_hidden_dim=config.iou_head_hidden_dim,
        ),
        pixel_mean=list(config.pixel_mean),
        pixel_std=list(config.pixel_std),
    )
    return model.eval()
