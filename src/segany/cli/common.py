"""Arguments shared by several commands."""

from __future__ import annotations

import argparse
import sys
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


REMOVED_STAGE_FLAGS = ("--refiner", "--graph-cut", "--ranker", "--box-ranker", "--zoom")


class _Removed(argparse.Action):
    """A flag of segany 0.1 that is gone: using it is an error naming what replaces it."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        raise InputError(
            f"{option} was removed in segany 0.2.0: the mask stages are opt-in now; pass "
            "--stages auto (the stages trained with the model's weights) or --stages FILE "
            "(a stages file, see docs/training.md)"
        )


def add_stage_arguments(parser: argparse.ArgumentParser) -> None:
    """``--stages none|auto|FILE`` (read by :func:`stages_from_args`), and the removed
    per-stage flags of segany 0.1, which now fail with a message naming ``--stages``."""
    parser.add_argument(
        "--stages",
        metavar="none|auto|FILE",
        default="none",
        help="mask stages after the network (segany.refine): 'none' (default: the "
        "network's masks, as the official code gives them), 'auto' (the stages trained "
        "with the model's weights: the bundled model has them) or a stages file",
    )
    for flag in REMOVED_STAGE_FLAGS:
        parser.add_argument(flag, action=_Removed, nargs="?", help=argparse.SUPPRESS)


def stages_from_args(args: argparse.Namespace, model: Any) -> Any:
    """The :class:`segany.refine.Stages` that ``--stages`` names for ``model``, or None
    for 'none'; a value that is no choice nor a file: ``InputError``."""
    value = args.stages
    if value == "none":
        return None
    from segany import refine

    if value == "auto":
        return refine.registered_stages(model)
    if not Path(value).is_file():
        raise InputError(f"--stages: {value} is not 'none', 'auto' or a stages file")
    return refine.read_stages_file(value)


def staged(predictor: Any, stages: Any) -> Any:
    """``predictor`` wrapped in ``stages`` (None: as it is)."""
    if stages is None:
        return predictor
    from segany.refine import StagedPredictor

    return StagedPredictor(predictor, stages)


def demo_model_note(model: Any) -> None:
    """One line on stderr when ``model`` is the bundled demo model on a user's images:
    what it is, and how to get a published one."""
    from segany.registry import DEFAULT_MODEL

    bundled = getattr(model, "weights_sha256", None) is not None
    if bundled and getattr(model, "name", None) == DEFAULT_MODEL:
        print(
            "segany: note: segany_shapes is the bundled demo model, trained on generated "
            "shapes; on photos its masks are shapeless. Use a published model, e.g. "
            "--model mobile_sam (downloaded once, 40 MB) or --model sam_vit_b",
            file=sys.stderr,
        )


def refiner_argument(parser: argparse.ArgumentParser) -> None:
    """``--refiner auto|none|PATH`` of a trainer: the refiner a trained stage works after
    (read by :func:`refiner_choice`)."""
    parser.add_argument(
        "--refiner",
        metavar="auto|none|PATH",
        default="auto",
        help="the mask refiner the stage works after: 'auto' (the one trained with the "
        "model's weights, if any), 'none', or a refiner file",
    )


def refiner_choice(args: argparse.Namespace, model: Any) -> Any:
    """The refiner ``--refiner`` names for ``model``: the registered one (None when the
    model's weights have none), None, or the file's."""
    from segany.refine import get_stage_spec, load_refiner

    value = args.refiner
    if value == "none":
        return None
    if value == "auto":
        spec = get_stage_spec(model)
        return load_refiner(spec.model) if spec is not None and spec.refiner else None
    if not Path(value).is_file():
        raise InputError(f"--refiner: {value} is not 'auto', 'none' or a file")
    return load_refiner(path=value)


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
