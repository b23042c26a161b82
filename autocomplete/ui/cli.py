"""Command line: arguments -> Settings (what to do and how), which autocomplete.ui.dispatch runs.

Imports no torch at module level: --help, --version, usage errors and --list-models stay fast.
"""

from __future__ import annotations

import inspect
import re
from typing import Annotated, Literal, Optional

import typer

from autocomplete import __version__, config
from autocomplete.settings import OPTIONS, Option, Settings
from autocomplete.terminal import report
from autocomplete.ui.dispatch import execute, guarded
from autocomplete.ui.options import from_options

DEFAULTS = Settings()

app = typer.Typer(add_completion=True, context_settings={"help_option_names": ["-h", "--help"]})


def _checked(spec: Option):
    """A Typer callback from the option's check, so the CLI and the REPL reject the same values. Not given (None):
    the config file or the default applies."""

    def callback(value):
        if value is None:
            return value
        try:
            return [spec.checked(v) for v in value] if spec.multiple else spec.checked(value)
        except ValueError as error:
            said = str(error)
            raise typer.BadParameter(f"{spec.flags[-1]} {said}" if said.startswith("must") else said) from None

    return callback


def _help(spec: Option) -> str:
    if spec.show_default is False:
        return spec.help
    shown = spec.show_default if isinstance(spec.show_default, str) else getattr(DEFAULTS, spec.dest)
    return f"{spec.help} \\[default: {shown:g}]" if isinstance(shown, float) else f"{spec.help} \\[default: {shown}]"


def _parameter(spec: Option) -> inspect.Parameter:
    """The Typer parameter of an option in the table: None (or False, or []) when not given."""
    if spec.kind == "flag":
        kind, default = bool, False
    elif isinstance(spec.kind, tuple):
        kind, default = Optional[Literal[spec.kind]], None
    else:
        kind, default = (list[spec.kind], []) if spec.multiple else (Optional[spec.kind], None)
    metavar = spec.metavar or (f"[{'|'.join(spec.kind)}]" if isinstance(spec.kind, tuple) else "")
    option = typer.Option(*spec.flags, envvar=spec.envvar, metavar=metavar, show_default=False, help=_help(spec),
                          callback=None if spec.kind == "flag" or isinstance(spec.kind, tuple) else _checked(spec),
                          autocompletion=_model_names if spec.dest == "model" else None)
    return inspect.Parameter(spec.dest, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[kind, option])


def _model_names(incomplete: str) -> list[str]:
    """What the shell completes -m with: the models' short names (choices are completed by Click itself)."""
    from autocomplete.engine.models import ALIASES  # only when completing

    return [name for name in ALIASES if name.startswith(incomplete)]


def _plain(message: str) -> str:
    """Typer's usage errors in our own words: it words some of them as its validation library does."""
    message = message.replace("Value error, ", "")
    message = re.sub(r"Input should be greater than or equal to (\S+)", r"must be \1 or more", message)
    message = re.sub(r"Input should be a valid (number|integer)[^(]*", lambda m: "must be a " + (
        "number" if m.group(1) == "number" else "whole number"), message)
    return message.strip()


def _version(value: bool) -> None:
    if value:
        print(f"autocomplete {__version__}")
        raise typer.Exit()


def main(prompt: str | None = None, version: bool = False, **options) -> Settings:
    return from_options(prompt, **options)


# Typer reads the command's options from main's signature: made from the table, so each is spelled once.
main.__signature__ = inspect.Signature([
    inspect.Parameter("prompt", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=Annotated[
        Optional[str], typer.Argument(metavar="PROMPT", show_default=False, help="Text to complete. With piped "
                                      "stdin, stdin comes first, then a space, then PROMPT.")]),
    *(_parameter(spec) for spec in OPTIONS),
    inspect.Parameter("version", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
        bool, typer.Option("--version", metavar="", callback=_version, is_eager=True,
                           help="Show the version and exit")]),
])
main.__annotations__ = {name: param.annotation for name, param in main.__signature__.parameters.items()}
app.command(
    help="Complete what you type with a language model, like a search box: whole likely queries, even mid-word.",
    epilog="Examples:  autocomplete \"san fra\"  ·  autocomplete --suggest 5 \"stock mar\"  ·  "
           "cat notes.txt | autocomplete  ·  autocomplete -i  ·  autocomplete --server start.  "
           f"Defaults you set once: {config.path()} (see docs/usage.md); options and environment variables win "
           "over it.")(main)


def _command():
    """The click command Typer makes, without Typer's type placeholders ("<str>" beside PROMPT, "<bool>" beside
    --help and the shell completion flags): a metavar says it where one helps."""
    command = typer.main.get_command(app)
    for param in command.params:
        if isinstance(param, typer.core.TyperArgument):
            param.display_type_rich = lambda ctx: None
        elif param.name in ("install_completion", "show_completion"):  # Typer's own: flags
            param.metavar = ""
    make = command.get_help_option

    def help_option(ctx):
        option = make(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    return command


def _parse(command, argv: list[str] | None) -> Settings | int:
    """The Settings, or the exit status when Typer has answered already (--help, --version)."""
    result = command.main(args=argv, prog_name="autocomplete", standalone_mode=False)
    return result if isinstance(result, Settings) else result or 0


def run(argv: list[str] | None = None) -> int:
    """Parse the command line with Typer (what autocomplete.ui.args declines: help, version, usage errors) and run it."""
    command = _command()

    def work() -> int:
        try:
            settings = _parse(command, argv)
        except typer.Exit as done:
            return done.exit_code
        except typer.TyperException as error:  # Typer's usage errors: bad option, bad value, missing argument
            report(f"{_plain(error.format_message())} (see autocomplete --help)")
            return error.exit_code
        except typer.Abort:
            return 130
        return settings if isinstance(settings, int) else execute(settings)

    return guarded(work)
