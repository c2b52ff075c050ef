"""Command-line interface: ``segany segment`` and ``segany models``.

The entry point is :func:`segany.cli.main.main` (``segany`` console script, or
``python -m segany.cli``); each subcommand lives in its own module. This package is the
only part of segany that prints.
"""
