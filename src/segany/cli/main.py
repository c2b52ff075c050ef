"""The ``segany`` command: argument parsing, dispatch to subcommands and error reporting.

Every error a user can cause ends as a single line ``segany: error: <message>`` on stderr
and exit status 2, without a traceback: argparse usage errors, any
:class:`~segany.errors.SegAnyError` and :class:`OSError` (e.g. an unwritable output
directory). Ctrl-C exits with status 130. Other exceptions are bugs and keep their traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any, NoReturn

from segany.cli import bench, everything, export, models, project, segment, serve, train, user
from segany.cli import eval as eval_command
from segany.errors import SegAnyError

__all__ = ["build_parser", "main"]

PROG = "segany"
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line, ``segany: error: ...``, and exit status 2.

    Subparsers inherit this class, so subcommand errors use the same format.
    """

    def error(self, message: str) -> NoReturn:
        """Print ``segany: error: <message>`` to stderr and exit with status 2."""
        self.exit(EXIT_USAGE, f"{PROG}: error: {_one_line(message)}\n")


class _VersionAction(argparse.Action):
    """``--version``: print the installed version and exit (looked up only when asked)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "show the version and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        """Print ``segany <version>`` to stdout and exit with status 0."""
        print(f"{PROG} {_version()}")
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    """Return the ``segany`` argument parser with all subcommands registered."""
    parser = _Parser(
        prog=PROG,
        description="Segment Anything (SAM, MobileSAM) on an ordinary CPU.",
    )
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True
    )
    segment.register(commands)
    everything.register(commands)
    models.register(commands)
    train.register(commands)
    eval_command.register(commands)
    export.register(commands)
    bench.register(commands)
    serve.register(commands)
    user.register(commands)
    project.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``segany`` command line.

    Args:
        argv: Arguments without the program name; ``None`` means ``sys.argv[1:]``.

    Returns:
        Exit status: 0 on success, 2 on a usage or input error, 130 when interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.func(args))
    except SystemExit as exc:  # argparse: --help, --version and usage errors
        return _exit_status(exc.code)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SegAnyError as exc:
        _report(str(exc) or type(exc).__name__)
        return EXIT_USAGE
    except OSError as exc:
        _report(_describe_os_error(exc))
        return EXIT_USAGE


def _report(message: str) -> None:
    """Print one error line to stderr."""
    print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr)


def _one_line(message: str) -> str:
    """Join the non-blank lines of ``message`` with spaces."""
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def _describe_os_error(exc: OSError) -> str:
    """Readable text for an OSError, e.g. ``Permission denied: 'out/a.png'``."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        return f"{reason}: '{exc.filename}'"
    return reason


def _exit_status(code: object) -> int:
    """Map a :class:`SystemExit` code to an integer exit status."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return EXIT_USAGE


def _version() -> str:
    """Installed version of segany, or the package's ``__version__`` when not installed."""
    try:
        return metadata.version("segany")
    except metadata.PackageNotFoundError:
        import segany

        return str(getattr(segany, "__version__", "unknown"))


if __name__ == "__main__":
    sys.exit(main())
