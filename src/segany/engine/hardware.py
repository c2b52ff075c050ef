"""What this CPU computes natively: bf16 pays off only with AVX-512 BF16 or AMX.

Without them PyTorch emulates bf16 arithmetic, which is several times slower than fp32
(a training step as well as inference; docs/training.md, 'bf16 only where the CPU has
it'). Training (``TrainConfig.bf16``) and the ``fast`` mode therefore ask
:func:`native_bf16` first.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

#: /proc/cpuinfo flags that mean bf16 matrix products run in hardware.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The first processor's flags in ``cpuinfo`` (empty where it cannot be read)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return set(line.split(":", 1)[1].split())
    return set()


def onednn_bf16() -> bool | None:
    """oneDNN's own answer to "does this CPU have native bf16?" (None if it gives none)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    if check is None:
        return None
    try:
        return bool(check())
    except RuntimeError:
        return None


@functools.cache
def native_bf16() -> bool:
    """True when this CPU multiplies bf16 matrices in hardware (AVX-512 BF16 or AMX):
    oneDNN's answer, else the CPU's flags; False where bf16 would be emulated."""
    answer = onednn_bf16()
    if answer is not None:
        return answer
    return any(flag in cpu_flags() for flag in BF16_FLAGS)


def bf16_autocast(wanted: bool = True) -> torch.autocast:
    """CPU autocast to bf16, enabled when ``wanted`` and bf16 is native here (emulated
    bf16 is slower than fp32)."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=wanted and native_bf16())
