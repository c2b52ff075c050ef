"""How a model runs: exact fp32 or fast (:mod:`.modes`), shared-image decoding."""

from .modes import (
    MODES,
    Runtime,
    apply_mode,
    decode,
    decode_prompts,
    decode_prompts_above,
    encode,
    low_res_size,
    mode_of,
    prime,
)
from .shared_decoder import decode_shared, predict_masks_shared

__all__ = [
    "MODES",
    "Runtime",
    "apply_mode",
    "decode",
    "decode_prompts",
    "decode_prompts_above",
    "decode_shared",
    "encode",
    "low_res_size",
    "mode_of",
    "predict_masks_shared",
    "prime",
]
