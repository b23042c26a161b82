"""The command line, read without Typer: a shell call must not spend more time parsing than completing.

Typer (0.29, with pydantic) costs ~0.15 s of a call whose whole budget, on a warm server, is ~0.12 s. So the
command reads its arguments here first: the options below, the forms click accepts (`--opt value`, `--opt=value`,
`-t0`, `-t 0`, repeated options, `--`), the same environment variables and the same checks. Anything else (`--help`,
`--version`, a usage error, a short-option cluster, anything unknown) gives None, and Typer parses it (autocomplete.ui.cli),
so every message a user reads is Typer's. Typer stays the reference: tests/ui/test_args.py checks that this table is
Typer's options and that both give the same Settings over generated command lines.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from autocomplete import settings as checks
from autocomplete.errors import UserError


@dataclass(frozen=True)
class Spec:
    dest: str  # the parameter's name in cli.main
    flags: tuple[str, ...]
    kind: object  # "flag", int, float, str, or a tuple of choices
    multiple: bool = False
    envvar: str | None = None


SPECS = (
    Spec("model", ("-m", "--model"), str, envvar="AUTOCOMPLETE_MODEL"),
    Spec("temperature", ("-t", "--temperature"), float, multiple=True),
    Spec("top_k", ("-k", "--top-k"), int),
    Spec("top_p", ("-p", "--top-p"), float),
    Spec("max_tokens", ("-n", "--max-tokens"), int),
    Spec("seed", ("--seed",), int),
    Spec("stop", ("--stop",), checks.STOP_RULES),
    Spec("style", ("--style",), checks.STYLES, envvar="AUTOCOMPLETE_STYLE"),
    Spec("examples", ("--examples",), str),
    Spec("suggest", ("--suggest",), int),
    Spec("words", ("--words",), int),
    Spec("explain", ("--explain",), "flag"),
    Spec("only_new", ("--only-new",), "flag"),
    Spec("json_lines", ("--json",), "flag"),
    Spec("each_line", ("--each-line",), "flag"),
    Spec("interactive", ("-i", "--interactive"), "flag"),
    Spec("device", ("--device",), checks.DEVICES),
    Spec("precision", ("--precision",), checks.PRECISIONS, envvar="AUTOCOMPLETE_PRECISION"),
    Spec("engine", ("--engine",), checks.ENGINES, envvar="AUTOCOMPLETE_ENGINE"),
    Spec("server", ("--server",), ("start", "stop", "status")),
    Spec("api", ("--api",), str, envvar="AUTOCOMPLETE_API_BASE"),
    Spec("no_server", ("--no-server",), "flag"),
    Spec("idle_timeout", ("--idle-timeout",), float, envvar="AUTOCOMPLETE_IDLE_TIMEOUT"),
    Spec("list_models", ("--list-models",), "flag"),
)
_BY_FLAG = {flag: spec for spec in SPECS for flag in spec.flags}


class _Unsure(Exception):
    """Not a command line this module reads: Typer will (and word any error)."""


def parse(argv: list[str], environ: Mapping[str, str] = os.environ):
    """The Settings this command line asks for, or None when Typer should parse it."""
    try:
        given, prompt = _read(argv)
        values = {spec.dest: _value(spec, given.get(spec.dest), environ) for spec in SPECS}
        from autocomplete.ui.dispatch import from_options

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


def _value(spec: Spec, given, environ: Mapping[str, str]):
    if spec.kind == "flag":
        return bool(given)
    if given is None and spec.envvar and environ.get(spec.envvar):
        given = [environ[spec.envvar]]
    if given is None:
        return None  # the default, which dispatch.from_options fills in
    values = [_convert(spec, text) for text in given]
    return values if spec.multiple else values[-1]


def _convert(spec: Spec, text: str):
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
