"""The `autocomplete` command: its arguments are read by autocomplete.ui.args, without Typer (~0.15 s of every shell
call); what that declines (help, version, usage errors, the unusual) goes to Typer in autocomplete.ui.cli."""

from __future__ import annotations

import os
import sys

from autocomplete.ui import args
from autocomplete.ui.dispatch import execute, guarded


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C before the command's own handling starts (waiting on a busy server, say)
        return 130


# What the shell's completion script sets when it asks for completions (Click's name for it: _{PROG}_COMPLETE).
COMPLETING = "_AUTOCOMPLETE_COMPLETE"


def _main(argv: list[str]) -> int:
    settings = None if COMPLETING in os.environ else args.parse(argv)
    if settings is not None:
        return guarded(lambda: execute(settings))
    from autocomplete.ui.cli import run  # loads typer

    return run(argv)
