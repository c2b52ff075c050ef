"""A one-entry memo per slot for image-side work that many prompt batches repeat."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["memo", "tensor_version"]

_MEMO: dict[str, tuple[tuple[tuple[object, int], ...], torch.Tensor | None, torch.Tensor]] = {}


def memo(
    slot: str,
    sources: tuple[object, ...],
    make: Callable[[], torch.Tensor],
    value_key: torch.Tensor | None = None,
) -> torch.Tensor:
    """``make()``, remembered in ``slot`` while the ``sources`` are the same objects.

    Image-side work that every prompt batch on one image repeats (the token-major image
    tokens, the first block's key and value projections) is done once per image. Only
    without autograd (training needs the graph). Tensors are compared by identity and
    in-place version (the sources are kept alive, so an address is never reused), and
    ``value_key``, a small tensor, by value.
    """
    if torch.is_grad_enabled():
        return make()
    key: tuple[tuple[object, int], ...] = tuple(
        (obj, tensor_version(obj)) if isinstance(obj, torch.Tensor) else (obj, 0) for obj in sources
    )
    hit = _MEMO.get(slot)
    if (
        hit is not None
        and len(hit[0]) == len(key)
        and all(a is b and va == vb for (a, va), (b, vb) in zip(hit[0], key, strict=True))
        and (
            hit[1] is None
            if value_key is None
            else hit[1] is not None and torch.equal(value_key, hit[1])
        )
    ):
        return hit[2]
    value = make()
    _MEMO[slot] = (key, None if value_key is None else value_key.clone(), value)
    return value


def tensor_version(tensor: torch.Tensor) -> int:
    """The in-place version counter (-1 for inference tensors, which keep none)."""
    try:
        return int(tensor._version)
    except RuntimeError:
        return -1
