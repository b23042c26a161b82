"""The `autocomplete` command: its arguments are read by autocomplete.ui.args, without Typer (~0.15 s of every shell
call); what that declines (help, version, usage errors, the unusual) goes to Typer in autocomplete.ui.cli."""

from __future__ import annotations

import sys

from autocomplete.ui import args
from autocomplete.ui.dispatch import execute, guarded


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C before the command's own handling starts (waiting on a busy server, say)
        return 130


def _main(argv: list[str]) -> int:
    settings = args.parse(argv)
    if settings is not None:
        return guarded(lambda: execute(settings))
    from autocomplete.ui.cli import run  # loads typer

    return run(argv)
