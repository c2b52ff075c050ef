"""``segany models``: a table of the registered models and the state of their weights."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["register", "rows", "run"]

_HEADER = ("NAME", "PARAMS", "ENCODER", "WEIGHTS", "LICENSE", "CACHED", "URL")


def register(commands: Any) -> None:
    """Add the ``models`` subcommand to an argparse subparsers object."""
    parser = commands.add_parser(
        "models",
        help="list the registered models and whether their weights are cached",
        description=(
            "List the registered models: parameter count, image encoder, weights size, "
            "licence, whether the weights are in the local cache (and where), and the "
            "download URL."
        ),
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the model table to stdout; return the exit status (0)."""
    print(_format_table([_HEADER, *rows()]))
    return 0


def rows() -> list[tuple[str, ...]]:
    """One table row of strings per registered model, in registry order."""
    from segany import registry

    table: list[tuple[str, ...]] = []
    for entry in registry.list_models():
        spec = registry.get_spec(entry) if isinstance(entry, str) else entry
        weights = getattr(spec, "weights", None)
        cached = _cached_path(spec)
        table.append(
            (
                str(spec.name),
                _format_count(getattr(spec, "num_params", None)),
                str(getattr(spec, "encoder", "") or "-"),
                _format_bytes(getattr(weights, "size", None)),
                str(getattr(weights, "license", None) or "-"),
                "-" if weights is None else (f"yes ({cached})" if cached else "no"),
                str(getattr(weights, "url", None) or "-"),
            )
        )
    return table


def _cached_path(spec: Any) -> Path | None:
    """Path of the spec's weights in the local cache, or ``None`` when not downloaded."""
    from segany import loading, weights

    if getattr(spec, "weights", None) is None:
        return None
    finder = getattr(loading, "cached_path", None) or getattr(weights, "cached_path", None)
    if finder is not None:
        found = finder(spec)
        return Path(found) if found is not None else None
    path = weights.cache_dir() / spec.weights.filename
    return path if path.is_file() else None


def _format_count(count: int | None) -> str:
    """Parameter count in millions, e.g. ``9.7M``; ``-`` when unknown."""
    if count is None:
        return "-"
    return f"{count / 1e6:.1f}M"


def _format_bytes(size: int | None) -> str:
    """File size in MiB or GiB, e.g. ``38.8 MiB``; ``-`` when unknown."""
    if size is None:
        return "-"
    if size >= 1 << 30:
        return f"{size / (1 << 30):.2f} GiB"
    return f"{size / (1 << 20):.1f} MiB"


def _format_table(table: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    lines = []
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)
