"""Arguments shared by several commands."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from segany.errors import InputError

C = TypeVar("C")


def add_model_arguments(parser: argparse.ArgumentParser, with_mode: bool = True) -> None:
    """``--model NAME``, ``--checkpoint PATH`` (the architecture inferred from the file) and,
    with ``with_mode``, ``--mode exact|fast``."""
    parser.add_argument("--model", metavar="NAME", help="registered model (see 'segany models')")
    parser.add_argument(
        "--checkpoint",
        metavar="PATH",
        type=Path,
        help="weights file; the architecture is --model or inferred from the file",
    )
    if with_mode:
        parser.add_argument(
            "--mode",
            choices=("exact", "fast"),
            default="exact",
            help="exact: fp32, the official results (default); fast: the fastest path this CPU "
            "has (bf16 where native, else fp32; OpenVINO's encoder if installed)",
        )


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    return _whole_number(text, 0)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_mask_stage_arguments(parser: argparse.ArgumentParser) -> None:
    """``--refiner auto|none|PATH``, ``--graph-cut auto|on|none``, ``--ranker
    auto|none|PATH``, ``--box-ranker auto|none|PATH`` and ``--zoom auto|on|none|W,W``: the
    stages after the decoder (see Predictor). "auto" takes what the model's registry entry
    names for its weights; the other values give the stages to weights of your own."""
    refiner_argument(parser)
    parser.add_argument(
        "--graph-cut",
        choices=("auto", "on", "none"),
        default="auto",
        help="snap masks to colour edges with a graph cut: 'auto' (when the model's "
        "registry entry asks for it, as the bundled model's does), 'on' or 'none'",
    )
    parser.add_argument(
        "--ranker",
        metavar="auto|none|PATH",
        default="auto",
        help="score a click's snapped masks with a ranker: 'auto' (the one trained with the "
        "model's weights, if any), 'none' (the decoder's scores), or a ranker file",
    )
    parser.add_argument(
        "--box-ranker",
        metavar="auto|none|PATH",
        default="auto",
        help="score a box's snapped masks with a ranker trained on boxes: 'auto' (the one "
        "trained with the model's weights, if any), 'none' (as --ranker), or a ranker file",
    )
    parser.add_argument(
        "--zoom",
        metavar="auto|on|none|W,W",
        default="auto",
        help="answer clicks on zoomed crops around them as well (segany.zoom): 'auto' (when "
        "the model's registry entry names crops, as the bundled model's does), 'on' (crops "
        "of 0.5 and 0.2 of the image's side), 'none', or the crops' sides as fractions",
    )


def refiner_argument(parser: argparse.ArgumentParser) -> None:
    """``--refiner auto|none|PATH`` (read by :func:`refiner_choice`)."""
    parser.add_argument(
        "--refiner",
        metavar="auto|none|PATH",
        default="auto",
        help="mask refiner: 'auto' (the one trained with the model's weights, if any), "
        "'none' (the decoder's masks, as the official code), or a refiner file",
    )


def mask_stages(args: argparse.Namespace) -> dict[str, Any]:
    """``Predictor`` keyword arguments (refiner, graph_cut, rankers, zoom) for the options of
    :func:`add_mask_stage_arguments`; a value that is no choice nor a file: ``InputError``."""
    from segany.models.graph_cut import GraphCut
    from segany.refiners import load_box_ranker, load_ranker

    graph_cut = {"auto": "auto", "on": GraphCut(), "none": None}[args.graph_cut]
    return {
        "refiner": refiner_choice(args),
        "graph_cut": graph_cut,
        "ranker": _stage_file(args.ranker, "--ranker", load_ranker),
        "box_ranker": _stage_file(args.box_ranker, "--box-ranker", load_box_ranker),
        "zoom": _zoom(args.zoom),
    }


def refiner_choice(args: argparse.Namespace) -> Any:
    """``Predictor``'s ``refiner`` for ``--refiner``: "auto", None or the file's refiner."""
    from segany.refiners import load_refiner

    return _stage_file(args.refiner, "--refiner", load_refiner)


def _stage_file(value: str, flag: str, load: Callable[..., Any]) -> Any:
    """ "auto", None for "none", else the stage ``load`` reads from the file ``value``."""
    if value in ("auto", "none"):
        return None if value == "none" else "auto"
    path = Path(value)
    if not path.is_file():
        raise InputError(f"{flag}: {value} is not 'auto', 'none' or a file")
    return load(path=path)


def _zoom(value: str) -> Any:
    """``Predictor``'s ``zoom`` for ``--zoom auto|on|none|W,W``."""
    from segany.zoom import ClickZoom

    if value in ("auto", "none"):
        return None if value == "none" else "auto"
    if value == "on":
        return ClickZoom()
    try:
        return ClickZoom(windows=tuple(float(w) for w in value.split(",")))
    except ValueError:
        raise InputError(
            f"--zoom: expected auto, on, none or fractions in (0, 1) such as 0.5,0.2; got {value!r}"
        ) from None


def output_file(out: Path, name: str, overwrite: bool) -> Path:
    """``out/name``, refused (``InputError``) when it exists without ``overwrite`` or when
    ``out`` exists and is not a folder (the folder itself is made by the caller)."""
    target = out / name
    if target.exists() and not overwrite:
        raise InputError(f"{target} exists; pass --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is not a folder")
    return target


def config_from_args(cls: type[C], args: argparse.Namespace, names: tuple[str, ...]) -> C:
    """``cls(**settings)`` from the options in ``names`` that were given (others: defaults)."""
    settings = {k: getattr(args, k) for k in names}
    return cls(**{k: v for k, v in settings.items() if v is not None})


def weights_record(model: Any, checkpoint: Path | None) -> dict[str, Any]:
    """A trained stage's summary entries naming the frozen weights it learnt from: the
    model's architecture and, for a ``--checkpoint`` file, its path and sha256 (the stage
    fits those weights only)."""
    from segany.download import sha256_file

    record: dict[str, Any] = {"model": model.name}
    if checkpoint is not None:
        record |= {"checkpoint": str(checkpoint), "checkpoint_sha256": sha256_file(checkpoint)}
    return record


def held_out_summary(
    out: Path,
    summary: dict[str, Any],
    stage: str,
    predictor_with: Callable[[Any], Any],
    trained: Any,
    scenes: int,
    keys: tuple[str, ...],
) -> None:
    """Score ``predictor_with(None)`` and ``predictor_with(trained)`` (Predictors without
    and with the trained ``stage``) on ``scenes`` held-out scenes (none when 0), the
    ``keys`` of the promptable evaluation over all objects, into ``summary`` under
    ``without_<stage>`` and ``with_<stage>``; write it to ``out/summary.json`` and print it."""
    import json

    from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
    from segany.eval import evaluate_promptable, summarize

    chosen = SceneDataset(scenes, EVAL_BASE_SEED)
    for name, part in (("without", None), ("with", trained)) if scenes else ():
        rows = evaluate_promptable(predictor_with(part), (chosen[i] for i in range(scenes)))
        table = summarize(rows)["all"]
        summary[f"{name}_{stage}"] = {k: table[k] for k in keys}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


@contextmanager
def jsonl_log(out: Path) -> Iterator[Callable[[dict[str, Any]], object]]:
    """A writer of one JSON row per line to ``out/log.jsonl``, flushed line by line (to
    follow a run as it goes)."""
    import json

    with (out / "log.jsonl").open("w", buffering=1) as log:
        yield lambda row: log.write(json.dumps(row) + "\n")
