"""The command line, read without Typer: a shell call must not spend more time parsing than completing.

Typer (0.29, with pydantic) costs ~0.15 s of a call whose whole budget, on a warm server, is ~0.12 s. So the
command reads its arguments here first: the options of autocomplete.settings.OPTIONS, in the forms click accepts
(`--opt value`, `--opt=value`, `-t0`, `-t 0`, repeated options, `--`), the same environment variables and the same
checks. Anything else (`--help`, `--version`, a usage error, a short-option cluster, anything unknown) gives None,
and Typer parses it (autocomplete.ui.cli), so every message a user reads is Typer's. Typer stays the reference:
tests/ui/test_args.py checks that both read the same options and give the same Settings over generated command
lines.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from autocomplete.errors import UserError
from autocomplete.settings import OPTIONS, Option
from autocomplete.ui.options import from_options

_BY_FLAG = {flag: spec for spec in OPTIONS for flag in spec.flags}


class _Unsure(Exception):
    """Not a command line this module reads: Typer will (and word any error)."""


def parse(argv: list[str], environ: Mapping[str, str] = os.environ):
    """The Settings this command line asks for, or None when Typer should parse it."""
    try:
        given, prompt = _read(argv)
        values = {spec.dest: _value(spec, given.get(spec.dest), environ) for spec in OPTIONS}
        return from_options(prompt=prompt, **values)
    except (_Unsure, ValueError, UserError):  # a check failed, or options that don't go together: Typer says it
        return None


def _read(argv: list[str]) -> tuple[dict[str, list[str] | bool], str | None]:
    given: dict[str, list[str] | bool] = {}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            positional += argv[i + 1:]
            break
        if word.startswith("--"):
            flag, eq, value = word.partition("=")
            spec = _BY_FLAG.get(flag)
            if spec is None or (spec.kind == "flag" and eq):
                raise _Unsure
            if spec.kind != "flag" and not eq:
                i += 1
                if i == len(argv):
                    raise _Unsure
                value = argv[i]
        elif word.startswith("-") and len(word) > 1:
            spec = _BY_FLAG.get(word[:2])
            if spec is None or (spec.kind == "flag" and len(word) > 2):
                raise _Unsure  # -h, --help's short form, or a cluster of short flags
            value = word[2:]
            if spec.kind != "flag" and not value:
                i += 1
                if i == len(argv):
                    raise _Unsure
                value = argv[i]
        else:
            positional.append(word)
            i += 1
            continue
        if spec.kind == "flag":
            given[spec.dest] = True
        elif spec.multiple:
            given.setdefault(spec.dest, []).append(value)
        else:
            given[spec.dest] = [value]  # given twice: the last one counts, as in click
        i += 1
    if len(positional) > 1:
        raise _Unsure
    return given, positional[0] if positional else None


def _value(spec: Option, given, environ: Mapping[str, str]):
    if spec.kind == "flag":
        return bool(given)
    if given is None and spec.envvar and environ.get(spec.envvar):
        given = [environ[spec.envvar]]
    if given is None:
        return None  # the default, which options.from_options fills in
    values = [_convert(spec, text) for text in given]
    return values if spec.multiple else values[-1]


def _convert(spec: Option, text: str):
    if isinstance(spec.kind, tuple):
        if text not in spec.kind:
            raise _Unsure
        return text
    if spec.kind is str:
        return text
    try:
        return spec.kind(text)
    except ValueError:
        raise _Unsure from None
