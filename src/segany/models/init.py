"""Building a model without spending time on random initialisation.

Random init of ViT-H's 641 M parameters takes tens of seconds on a CPU, and is wasted when a
checkpoint overwrites every tensor right after. :func:`skip_weight_init` turns the
``torch.nn.init`` functions into no-ops while a model is built; the caller must then load
a complete state dict (``strict=True``), as :func:`segany.load_model` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

_INIT_FUNCTIONS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "xavier_uniform_",
    "xavier_normal_",
)


def _keep(tensor: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
    return tensor


@contextmanager
def skip_weight_init() -> Iterator[None]:
    """Within this block, ``torch.nn.init`` functions leave tensors as allocated."""
    saved = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS}
    try:
        for name in _INIT_FUNCTIONS:
            setattr(nn.init, name, _keep)
        yield
    finally:
        for name, fn in saved.items():
            setattr(nn.init, name, fn)
