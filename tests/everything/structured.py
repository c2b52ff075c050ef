"""Random checkpoints whose decoder makes blob-shaped masks around the prompt point.

With fully random weights SAM's masks are salt-and-pepper noise whose boxes all cover the
image, so the generator's NMS keeps one of them and a parity test would compare almost
nothing. :func:`blob_state_dict` edits a random state dict deterministically so that:

* the decoder's image-to-token attention works as a positional kernel: an image location
  attends to the point token when the prompt's Fourier features match its own, so the
  point's influence on the image tokens is strongest around the point;
* the three multimask hypernetworks read one fixed direction of the upscaled embedding
  (a ridge fit of minus the distance to the point, saturated beyond twice the largest
  blob's radius, computed once from the decoder on the expected image embedding)
  against three thresholds, so the masks are nested irregular blobs of about ``areas``
  of a 200x300 image (small, medium, large), with logits of slope about ``slope`` per
  pixel at their edges;
* the predicted IoU is ``iou_centre`` plus a little noise that depends on the point.

Both the official model and ours load the edited dict, so the edit is only a choice of
(random) weights; the image embedding is kept, scaled by ``embedding_scale``, so the image
still perturbs the masks and the two implementations' small numerical differences matter.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

import segany
from segany.data.scenes import SceneConfig, generate_scene
from segany.models import SamConfig

#: The small random ViT of the reference tests (256-pixel input, 16x16 embedding).

DEC = "mask_decoder.transformer."
RIDGE = 1e-2  # relative ridge of the least-squares fit: keeps coefficients small
CHANNEL_STD = 0.7


def blob_state_dict(
    state: dict[str, Tensor],
    config: SamConfig,
    *,
    areas: tuple[float, float, float] = (0.01, 0.04, 0.12),
    slope: float = 4.0,
    frequency: float = 0.6,
    sharpness: float = 2.0,
    embedding_scale: float = 0.05,
    iou_centre: float = 0.9,
    iou_noise: float = 0.05,
    seed: int = 0,
) -> dict[str, Tensor]:
    """A copy of an official-format SAM state dict edited to make blob masks (see above)."""
    s = _positional_kernel(state, config, frequency, sharpness, embedding_scale, seed)
    up = "mask_decoder.output_upscaling.3."
    constant = s[up + "bias"].shape[0] - 1  # last upscaled channel: a constant (a bias)
    s[up + "weight"][:, constant] = 0.0
    s[up + "bias"][constant] = 3.0
    direction, offset, levels = _calibrate(s, config, areas, constant)
    gelu_3 = float(torch.nn.functional.gelu(torch.tensor(3.0)))
    for i in range(4):
        prefix = f"mask_decoder.output_hypernetworks_mlps.{i}.layers.2."
        level = levels[max(i - 1, 0)]
        bias = torch.zeros_like(s[prefix + "bias"])
        bias[:constant] = torch.as_tensor(direction, dtype=bias.dtype) * slope
        bias[constant] = (offset - level) * slope / gelu_3
        s[prefix + "weight"] = torch.zeros_like(s[prefix + "weight"])
        s[prefix + "bias"] = bias
    head = "mask_decoder.iou_prediction_head.layers.2."
    s[head + "weight"] = s[head + "weight"] * iou_noise
    s[head + "bias"] = torch.full_like(s[head + "bias"], iou_centre)
    return s


def _positional_kernel(
    state: dict[str, Tensor],
    config: SamConfig,
    frequency: float,
    sharpness: float,
    embedding_scale: float,
    seed: int,
) -> dict[str, Tensor]:
    """The edits up to the upscaled embedding (attention as a positional kernel)."""
    s = {k: v.clone() for k, v in state.items()}
    generator = torch.Generator().manual_seed(seed)
    key = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
    dim = 2 * s[key].shape[1]  # prompt embedding size C
    s[key] = torch.randn(s[key].shape, generator=generator) * frequency
    s["image_encoder.neck.3.weight"] *= embedding_scale
    s["image_encoder.neck.3.bias"] *= embedding_scale
    # q = k projection M: each head's rows pick (sin, cos) of its own frequencies
    attn = DEC + "layers.0.cross_attn_image_to_token."
    internal = s[attn + "q_proj.weight"].shape[0]
    n_heads = config.decoder_num_heads
    per_head = internal // n_heads
    select = torch.zeros(internal, dim)
    chosen = []
    for head in range(n_heads):
        for j in range(per_head // 2):
            freq = head * (per_head // 2) + j
            select[head * per_head + 2 * j, freq] = 1.0
            select[head * per_head + 2 * j + 1, dim // 2 + freq] = 1.0
            chosen += [freq, dim // 2 + freq]
    # Only the chosen frequencies vary; the others are 0 (sin = 0, cos = 1 everywhere).
    key = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
    s[key][:, len(chosen) // 2 :] = 0.0
    # Nothing before the image-to-token attention may depend on the point's position
    # (else the point moves the whole field, not only the blob), so layer 0's
    # self-attention and token-to-image queries ignore the positional dimensions; and
    # in that self-attention each token attends to itself, so the tokens stay distinct
    # (the point token's value differs from the others').
    keep = torch.ones(dim)
    keep[chosen] = 0.0
    for name in ("self_attn.q_proj", "self_attn.k_proj"):
        s[DEC + f"layers.0.{name}.weight"] = torch.diag(keep) * 2.0
        s[DEC + f"layers.0.{name}.bias"].zero_()
    s[DEC + "layers.0.self_attn.v_proj.weight"][:, chosen] = 0.0
    s[DEC + "layers.0.cross_attn_token_to_image.q_proj.weight"][:, chosen] = 0.0
    scale = math.sqrt(sharpness * math.sqrt(per_head))
    s[attn + "q_proj.weight"] = select * scale
    s[attn + "k_proj.weight"] = select * scale
    s[attn + "q_proj.bias"].zero_()
    s[attn + "k_proj.bias"].zero_()
    # Tokens after layer 0 are made tiny (their values scaled back up) and the learned
    # token embeddings carry nothing along the selected dimensions, so only the point
    # token's key has a positional part.
    eps = 1e-3
    s[DEC + "layers.0.norm3.weight"] *= eps
    s[DEC + "layers.0.norm3.bias"] *= eps
    s[attn + "v_proj.weight"] /= eps
    for name in (
        "mask_decoder.iou_token.weight",
        "mask_decoder.mask_tokens.weight",
        "prompt_encoder.not_a_point_embed.weight",
        "prompt_encoder.point_embeddings.1.weight",
    ):
        s[name][:, chosen] = 0.0
    # layer 1 must not write more into the image tokens; no checkerboard upsampling
    s[DEC + "layers.1.cross_attn_image_to_token.out_proj.weight"].zero_()
    s[DEC + "layers.1.cross_attn_image_to_token.out_proj.bias"].zero_()
    for name in (
        "mask_decoder.output_upscaling.0.weight",
        "mask_decoder.output_upscaling.3.weight",
    ):
        s[name] = s[name].mean(dim=(2, 3), keepdim=True).expand_as(s[name]).clone()
    # the GELUs of the upscaling work near 3, where they are almost the identity
    for name in ("mask_decoder.output_upscaling.1.bias", "mask_decoder.output_upscaling.3.bias"):
        s[name] = torch.full_like(s[name], 3.0)
    return s


@torch.inference_mode()
def _calibrate(
    s: dict[str, Tensor], config: SamConfig, areas: tuple[float, float, float], constant: int
) -> tuple[np.ndarray, float, list[float]]:
    """Fit ``-distance to the point ~ direction . upscaled + offset`` (expected image embedding).

    Returns the direction, the offset, and the fitted values' levels above which the
    centre point's blob covers each of ``areas`` of a 200x300 image.
    """
    with torch.device("meta"):
        model = segany.models.build_sam(config)
    model.image_encoder = torch.nn.Identity()  # not run: the expected embedding is used
    decoder_state = {k: v for k, v in s.items() if not k.startswith("image_encoder.")}
    model.load_state_dict(decoder_state, strict=False, assign=True)
    height, width = 200, 300
    frame = config.image_size
    scale = frame / max(height, width)
    grid = segany.everything.grid.build_point_grid(3) * np.array([width, height])
    points = torch.as_tensor(grid * scale, dtype=torch.float32)[:, None]
    sparse, dense = model.prompt_encoder(
        points=(points, torch.ones(len(grid), 1, dtype=torch.int)), boxes=None, masks=None
    )
    # the expected embedding: the neck's last LayerNorm2d bias at every location
    bias = s["image_encoder.neck.3.bias"].to(torch.float32)
    embedding = bias[None, :, None, None].expand(1, -1, *dense.shape[2:])
    captured: list[Tensor] = []
    last_conv = model.mask_decoder.output_upscaling[3]
    hook = last_conv.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        model.mask_decoder(embedding, model.prompt_encoder.get_dense_pe(), sparse, dense, True)
    finally:
        hook.remove()
    # Standardise the last convolution's channels (mean 3, std CHANNEL_STD before the
    # GELU), in place in ``s``, so the upscaled features vary by a good fraction of their
    # size: the mask logits then come without large cancellations, and float rounding
    # (which differs between implementations) moves them very little.
    pre = captured[0][:, :constant].double()  # Bxcxlxl, before the GELU
    mean, std = pre.mean(dim=(0, 2, 3)), pre.std(dim=(0, 2, 3))
    gain = CHANNEL_STD / std
    key = "mask_decoder.output_upscaling.3."
    s[key + "weight"][:, :constant] *= gain[None, :, None, None].to(s[key + "weight"].dtype)
    new_bias = (s[key + "bias"][:constant].double() - mean) * gain + 3.0
    s[key + "bias"][:constant] = new_bias.to(s[key + "bias"].dtype)
    pre = (pre - mean[None, :, None, None]) * gain[None, :, None, None] + 3.0
    upscaled = torch.nn.functional.gelu(pre)
    side = upscaled.shape[-1]
    centres = (torch.arange(side) + 0.5) * (frame / side) / scale  # in image pixels
    inside_y, inside_x = centres < height, centres < width
    ys, xs = torch.meshgrid(centres[inside_y], centres[inside_x], indexing="ij")
    reach = 2 * math.sqrt(max(areas) * height * width / math.pi)
    feats, targets = [], []
    for b, (px, py) in enumerate(grid):
        f = upscaled[b][:, inside_y][:, :, inside_x]  # c x h' x w'
        feats.append(f.reshape(f.shape[0], -1).T)
        # minus the distance, saturated well outside the largest blob: a bounded target
        # needs no large coefficients on the features' faint far-field variations
        targets.append(-torch.hypot(xs - px, ys - py).clamp(max=reach).reshape(-1))
    x = torch.cat(feats)
    x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    y = torch.cat(targets).double()
    gram = x.T @ x
    ridge = RIDGE * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
    ridge[-1, -1] = 0.0  # the offset is not penalised
    solution = torch.linalg.solve(gram + ridge, x.T @ y)
    direction, offset = solution[:-1].numpy(), float(solution[-1])
    centre = len(grid) // 2
    fitted = feats[centre].numpy() @ direction + offset
    levels = [float(np.quantile(fitted, 1 - a)) for a in areas]
    return direction, offset, levels


def blob_models(
    config: SamConfig, path: Path, **options: object
) -> tuple[torch.nn.Module, segany.models.Sam]:
    """(official model, segany model) loaded from ONE blob checkpoint saved at ``path``.

    The checkpoint is a random one (``tests.reference.official.random_checkpoint``, seed
    1234) edited by :func:`blob_state_dict` and saved in the official format.
    """
    from tests.reference.official import official_sam, random_checkpoint

    random_checkpoint(config, path, seed=1234)
    state = blob_state_dict(torch.load(path, weights_only=True), config, **options)  # type: ignore[arg-type]
    torch.save(state, path)
    official = official_sam(config)
    official.load_state_dict(torch.load(path, weights_only=True))
    official.eval()  # after loading: MobileSAM caches its attention biases on eval()
    ours = segany.models.build_sam(config)
    segany.loading.load_weights(ours, segany.weights.load_state_dict_file(path), "blob", str(path))
    return official, ours


def scene(height: int, width: int, seed: int) -> np.ndarray:
    """A generated test image (segany's procedural scenes), ``HxWx3`` uint8."""
    return generate_scene(seed, SceneConfig(size=(height, width))).image
