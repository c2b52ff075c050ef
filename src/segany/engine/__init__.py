"""How a model runs: exact fp32 or fast bf16 (:mod:`.modes`), shared-image decoding."""

from .modes import MODES, apply_mode, decode, encode, mode_of
from .shared_decoder import decode_shared, predict_masks_shared

__all__ = [
    "MODES",
    "apply_mode",
    "decode",
    "decode_shared",
    "encode",
    "mode_of",
    "predict_masks_shared",
]
