"""Named models: each name maps to a config and the metadata of its official weights.

In the spirit of timm and torchvision: ``list_models()``, ``get_spec(name)`` and
``register_model(spec)``; :func:`segany.load_model` builds and loads from a spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch

from .errors import InputError
from .models.sam import SamConfig, build_sam
from .models.tiny_vit import TinyViTConfig
from .models.vit import ViTConfig


@dataclass(frozen=True)
class WeightsInfo:
    """Where a model's published weights live and how to recognise them."""

    url: str
    filename: str
    sha256: str | None
    size: int | None
    license: str


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its architecture config and, when published, its weights."""

    name: str
    config: SamConfig
    description: str
    weights: WeightsInfo | None = None
    prompt_head: WeightsInfo | None = None  # object-aware SegEvery's box head, if trained
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def encoder(self) -> str:
        """Short name of the image-encoder family."""
        enc = self.config.encoder
        if isinstance(enc, TinyViTConfig):
            return "TinyViT"
        return f"ViT (d{enc.embed_dim}, depth {enc.depth})"

    @cached_property
    def num_params(self) -> int:
        """Parameters of the whole model (counted on the meta device, no memory used)."""
        with torch.device("meta"):
            model = build_sam(self.config)
        return sum(p.numel() for p in model.parameters())


_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}

DEFAULT_MODEL = "segany_shapes"  # bundled, so it works without a download


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the registry; a name that is already taken raises ``ValueError``."""
    for name in (spec.name, *spec.aliases):
        if name in _REGISTRY or name in _ALIASES:
            raise ValueError(f"model name {name!r} is already registered")
    _REGISTRY[spec.name] = spec
    for alias in spec.aliases:
        _ALIASES[alias] = spec.name
    return spec


def list_models() -> list[ModelSpec]:
    """All registered models, in registration order."""
    return list(_REGISTRY.values())


def get_spec(name: str) -> ModelSpec:
    """The spec registered as ``name`` (or one of its aliases)."""
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise InputError(f"unknown model {name!r}; known models: {known}")
    return _REGISTRY[key]


_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"


def _register_sam(
    size: str, encoder: ViTConfig, filename: str, sha256: str, num_bytes: int
) -> None:
    """Register the official SAM model with the ViT-``size`` encoder."""
    register_model(
        ModelSpec(
            name=f"sam_vit_{size}",
            aliases=(f"vit_{size}",),
            description=f"SAM with the ViT-{size.upper()} image encoder (Kirillov et al., 2023)",
            config=SamConfig(encoder=encoder),
            weights=WeightsInfo(
                url=_SAM_URL + filename,
                filename=filename,
                sha256=sha256,
                size=num_bytes,
                license="Apache-2.0",
            ),
        )
    )


_register_sam(
    "b",
    ViTConfig(),
    "sam_vit_b_01ec64.pth",
    "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
    375_042_383,
)
_register_sam(
    "l",
    ViTConfig(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    "sam_vit_l_0b3195.pth",
    "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
    1_249_524_607,
)
_register_sam(
    "h",
    ViTConfig(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
    "sam_vit_h_4b8939.pth",
    "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
    2_564_550_879,
)
register_model(
    ModelSpec(
        name="mobile_sam",
        aliases=("vit_t",),
        description="MobileSAM: TinyViT-5M encoder distilled from SAM ViT-H (Zhang et al., 2023)",
        config=SamConfig(encoder=TinyViTConfig()),
        weights=WeightsInfo(
            url="https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
            filename="mobile_sam.pt",
            sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
            size=40_728_226,
            license="Apache-2.0",
        ),
    )
)

# segany's own small model, trained on the procedural scene generator (segany.data).
# The official ViT classes can express it, so official code can run the same weights.
SHAPES_CONFIG = SamConfig(
    encoder=ViTConfig(
        img_size=512,
        patch_size=16,
        embed_dim=256,
        depth=6,
        num_heads=8,
        window_size=8,
        global_attn_indexes=(2, 5),
        out_chans=128,
    ),
    prompt_embed_dim=128,
    decoder_num_heads=4,
    decoder_mlp_dim=512,
    iou_head_hidden_dim=128,
)
# The bundled weights (docs/training.md says how they were trained).
_SHAPES_FILE = "segany_shapes.safetensors"
_SHAPES_SHA256 = "726ee16886643513c8e2734bb6adff9279d6e82504fb7ffa7a13c7f38d1ced3d"
_SHAPES_SIZE = 24_626_528
# Its object-proposal head (object-aware SegEvery), trained with it (prompt_head_weight).
_SHAPES_HEAD_FILE = "segany_shapes_prompt_head.safetensors"
_SHAPES_HEAD_SHA256 = "a78b63e997d20fb02da45ccaecc6c78c1c6ea52ab9f2771d9567cd77163c05e7"
_SHAPES_HEAD_SIZE = 781_452


def bundled_weights(filename: str, sha256: str, size: int) -> WeightsInfo:
    """Weights shipped in the package's assets folder (licence: ours)."""
    return WeightsInfo(
        url="bundled:" + filename, filename=filename, sha256=sha256, size=size,
        license="Apache-2.0",
    )  # fmt: skip


register_model(
    ModelSpec(
        name="segany_shapes",
        description="segany's small SAM (ViT 256-d, depth 6, 512 px) trained on generated scenes",
        config=SHAPES_CONFIG,
        weights=bundled_weights(_SHAPES_FILE, _SHAPES_SHA256, _SHAPES_SIZE),
        prompt_head=bundled_weights(_SHAPES_HEAD_FILE, _SHAPES_HEAD_SHA256, _SHAPES_HEAD_SIZE),
    )
)

# The same, with a TinyViT-style convolution/attention encoder (MobileSAM's design at 512 px,
# smaller): compared with segany_shapes in docs/training.md. The official MobileSAM classes
# cannot express it (their TinyViT fixes a 64x64 output grid).
SHAPES_HYBRID_CONFIG = SamConfig(
    encoder=TinyViTConfig(
        img_size=512,
        embed_dims=(32, 64, 128, 192),
        depths=(2, 2, 4, 2),
        num_heads=(1, 2, 4, 6),
        window_sizes=(7, 7, 8, 8),
        out_chans=128,
        num_classes=0,
    ),
    prompt_embed_dim=128,
    decoder_num_heads=4,
    decoder_mlp_dim=512,
    iou_head_hidden_dim=128,
)
register_model(
    ModelSpec(
        name="segany_shapes_hybrid",
        description="segany_shapes with a small TinyViT-style encoder (conv + attention)",
        config=SHAPES_HYBRID_CONFIG,
    )
)
