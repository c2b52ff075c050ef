"""Run the command-line interface with ``python -m segany.cli``."""

from segany.cli.main import main

raise SystemExit(main())
