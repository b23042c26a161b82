"""Command line: arguments -> Settings (what to do and how), which autocomplete.ui.dispatch runs.

Imports no torch at module level: --help, --version, usage errors and --list-models stay fast.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Optional

import typer

from autocomplete import __version__, settings as checks
from autocomplete.settings import DEFAULT_MODEL, Settings
from autocomplete.ui.dispatch import execute, from_options, guarded, report

DEFAULTS = Settings()

app = typer.Typer(add_completion=False, context_settings={"help_option_names": ["-h", "--help"]})


def _checked(check):
    """Turn a settings check into a Typer callback, so the CLI and the REPL reject the same values."""

    def callback(value):
        try:
            return check(value)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None

    return callback


def _at_least_one(option: str):
    def check(value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"{option} must be 1 or more, not {value}")
        return value

    return check


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


@app.command(
    help="Complete what you type with a language model, like a search box: whole likely queries, even mid-word.",
    epilog="Examples:  autocomplete \"san fra\"  ·  autocomplete --suggest 5 \"stock mar\"  ·  "
           "cat notes.txt | autocomplete  ·  autocomplete -i  ·  autocomplete --server start")
def main(
    prompt: Annotated[Optional[str], typer.Argument(
        help="Text to complete. With piped stdin, stdin comes first, then a space, then PROMPT.",
        show_default=False)] = None,
    model: Annotated[Optional[str], typer.Option(
        "-m", "--model", envvar="AUTOCOMPLETE_MODEL", show_default=False,
        help=f"Alias, Hub id, saved model directory or .gguf file [default: {DEFAULT_MODEL}]")] = None,
    temperature: Annotated[list[float], typer.Option(
        "-t", "--temperature", metavar="T", callback=_checked(lambda ts: [checks.check_temperature(t) for t in ts]),
        help="softmax(logits / T): 0 = always the likeliest token, 1 = the model's own odds, >1 = wilder. "
             "Give several with --explain to compare them")
    ] = [DEFAULTS.temperature],
    top_k: Annotated[int, typer.Option(
        "-k", "--top-k", callback=_checked(checks.check_top_k),
        help="Sample only from the k likeliest tokens (0 = off)")] = DEFAULTS.top_k,
    top_p: Annotated[float, typer.Option(
        "-p", "--top-p", callback=_checked(checks.check_top_p),
        help="Sample only from the likeliest tokens holding this much probability (1 = off)")] = DEFAULTS.top_p,
    max_tokens: Annotated[int, typer.Option(
        "-n", "--max-tokens", callback=_checked(checks.check_max_tokens),
        help="Generate at most this many tokens")] = DEFAULTS.max_tokens,
    seed: Annotated[Optional[int], typer.Option(
        help="Random seed: the same seed and settings give the same completion", show_default=False)] = None,
    stop: Annotated[Literal["sentence", "line", "none"], typer.Option(
        help="End the completion at the first sentence end, line break, or only at max-tokens / end of text")
    ] = DEFAULTS.stop,
    style: Annotated[Literal["auto", "query", "text"], typer.Option(
        envvar="AUTOCOMPLETE_STYLE",
        help="query: complete a search query (ends at the line's end); text: continue plain text; "
             "auto: query for a short one-line prompt, text otherwise")] = DEFAULTS.style,
    examples: Annotated[Optional[str], typer.Option(
        "--examples", metavar="FILE", show_default=False,
        help="Your own example queries, one per line (say, a sample of your site's searches), "
             "in place of the built-in ones for the query style")] = None,
    suggest: Annotated[Optional[int], typer.Option(
        "--suggest", show_default=False, metavar="N", callback=_checked(_at_least_one("--suggest")),
        help="List the N likeliest distinct continuations with their probabilities, like a search box")] = None,
    words: Annotated[Optional[int], typer.Option(
        "--words", metavar="W", show_default=False, callback=_checked(_at_least_one("--words")),
        help="Longest suggestion, in words (with --suggest) [default: 3]")] = None,
    explain: Annotated[bool, typer.Option(
        "--explain", metavar="", help="Show each step: the likeliest next tokens, their probabilities per temperature, "
                          "the pick and the entropy")] = False,
    only_new: Annotated[bool, typer.Option("--only-new", metavar="", help="Print only the generated text")] = False,
    json_lines: Annotated[bool, typer.Option(
        "--json", metavar="",
        help="One JSON object per completion (JSON Lines) with tokens, settings and stats")] = False,
    each_line: Annotated[bool, typer.Option(
        "--each-line", metavar="", help="Complete every stdin line on its own, one output line each")] = False,
    interactive: Annotated[bool, typer.Option(
        "-i", "--interactive", metavar="",
        help="Start the REPL (what a bare `autocomplete` does on a terminal)")] = False,
    device: Annotated[Literal["auto", "cpu", "cuda", "mps"], typer.Option(
        help="Where to run the model")] = "auto",
    precision: Annotated[Literal["fp32", "int8"], typer.Option(
        envvar="AUTOCOMPLETE_PRECISION",
        help="fp32: exact. int8: int8 weights, faster decoding on CPU, slightly less faithful (see README)")] = "fp32",
    server: Annotated[Optional[Literal["start", "stop", "status"]], typer.Option(
        "--server", show_default=False,
        help="Keep the model loaded in a background process (start), or stop it, or show it (status). "
             "Completions use it automatically while it runs")] = None,
    api: Annotated[Optional[str], typer.Option(
        "--api", envvar="AUTOCOMPLETE_API_BASE", metavar="URL", show_default=False,
        help="Run the model on an OpenAI-compatible server (vLLM, llama.cpp, TGI, ollama, transformers serve), "
             "e.g. http://localhost:8000/v1; -m names its model. Key: AUTOCOMPLETE_API_KEY")] = None,
    no_server: Annotated[bool, typer.Option(
        "--no-server", metavar="", help="Load the model in this process even if a server is running")] = False,
    idle_timeout: Annotated[float, typer.Option(
        "--idle-timeout", envvar="AUTOCOMPLETE_IDLE_TIMEOUT", min=0, metavar="SECONDS",
        help="With --server start (or AUTOCOMPLETE_AUTOSTART=1): exit after this long unused (0 = never)")] = 300,
    list_models: Annotated[bool, typer.Option(
        "--list-models", metavar="", help="List the model aliases and which are available offline")] = False,
    version: Annotated[bool, typer.Option(
        "--version", metavar="", callback=_version, is_eager=True, help="Show the version and exit")] = False,
) -> Settings:
    return from_options(prompt, model, temperature, top_k, top_p, max_tokens, seed, stop, style, examples, suggest, words,
                           explain, only_new, json_lines, each_line, interactive, device, precision, server, api,
                           no_server, idle_timeout, list_models)


def _parse(command, argv: list[str] | None) -> Settings | int:
    """The Settings, or the exit status when Typer has answered already (--help, --version)."""
    result = command.main(args=argv, prog_name="autocomplete", standalone_mode=False)
    return result if isinstance(result, Settings) else result or 0


def run(argv: list[str] | None = None) -> int:
    """Parse the command line with Typer (what autocomplete.ui.args declines: help, version, usage errors) and run it."""
    command = typer.main.get_command(app)

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
