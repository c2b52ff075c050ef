"""``segany models``: a table of the registered models and the state of their weights."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
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
    from segany.loading import cached_path
    from segany.registry import list_models

    table: list[tuple[str, ...]] = []
    for spec in list_models():
        weights = spec.weights
        cached = cached_path(spec)
        table.append(
            (
                spec.name,
                _format_count(spec.num_params),
                spec.encoder,
                _format_bytes(weights.size if weights else None),
                weights.license if weights else "-",
                "-" if weights is None else (f"yes ({cached})" if cached else "no"),
                weights.url if weights else "-",
            )
        )
    return table


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
