"""The `autocomplete` command. With a warm server running, that server parses the command line: its process has
Typer loaded, and importing Typer here would cost ~0.15 s of every shell call (Typer 0.29 imports pydantic and
builds a validator per option). Without one, or for whatever it declines, the command line is parsed here."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C before the command's own handling starts (waiting on a busy server, say)
        return 130


def _main(argv: list[str]) -> int:
    invocation = None if _local_only(argv) else _parsed_by_a_server(argv)
    if invocation is not None:
        from autocomplete.dispatch import execute, guarded

        return guarded(lambda: execute(invocation))
    from autocomplete.cli import run

    return run(argv)


def _parsed_by_a_server(argv: list[str]):
    """The Invocation a running server parsed, or None (no server, or it declined)."""
    from autocomplete import client
    from autocomplete.dispatch import Invocation

    parsed = client.parse(argv)
    if parsed is None:
        return None
    try:
        return Invocation.from_dict(parsed)
    except (TypeError, KeyError, ValueError):  # a server of another make: parse here
        return None


def _local_only(argv: list[str]) -> bool:
    """--no-server means no server at all; help and version print here. Any word that could be one of those (a
    short-option cluster with h, say) counts: a wrong guess costs only the time the server would have saved."""
    return any(word in ("--no-server", "--help", "--version") or (word[:1] == "-" and word[1:2] != "-" and "h" in word)
               for word in argv)
