"""Command line: arguments -> Settings (what to do and how), which autocomplete.ui.dispatch runs.

Imports no torch at module level: --help, --version, usage errors and --list-models stay fast.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Optional

import typer

from autocomplete import __version__, config, settings as checks
from autocomplete.settings import DEFAULT_MODEL, Settings
from autocomplete.terminal import report
from autocomplete.ui.dispatch import execute, from_options, guarded

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


def _unless_none(check):
    """A check for an option whose default is None: not given, so the config file or the built-in default applies."""
    return lambda value: value if value is None else check(value)


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
           "cat notes.txt | autocomplete  ·  autocomplete -i  ·  autocomplete --server start.  "
           f"Defaults you set once: {config.path()} (see the README); options and environment variables win "
           "over it.")
def main(
    prompt: Annotated[Optional[str], typer.Argument(
        metavar="PROMPT", help="Text to complete. With piped stdin, stdin comes first, then a space, then PROMPT.",
        show_default=False)] = None,
    model: Annotated[Optional[str], typer.Option(
        "-m", "--model", envvar="AUTOCOMPLETE_MODEL", show_default=False, metavar="MODEL",
        help=f"Alias, Hub id, saved model directory or .gguf file \\[default: {DEFAULT_MODEL}]")] = None,
    temperature: Annotated[list[float], typer.Option(
        "-t", "--temperature", metavar="T", callback=_checked(lambda ts: [checks.check_temperature(t) for t in ts]),
        help="softmax(logits / T): 0 = always the likeliest token, 1 = the model's own odds, >1 = wilder. "
             f"Give several with --explain to compare them \\[default: {DEFAULTS.temperature}]", show_default=False)
    ] = [],
    top_k: Annotated[Optional[int], typer.Option(
        "-k", "--top-k", callback=_checked(_unless_none(checks.check_top_k)), metavar="K",
        show_default=False, help=f"Sample only from the K likeliest tokens (0 = off) \\[default: {DEFAULTS.top_k}]")
    ] = None,
    top_p: Annotated[Optional[float], typer.Option(
        "-p", "--top-p", callback=_checked(_unless_none(checks.check_top_p)), metavar="P",
        show_default=False, help="Sample only from the likeliest tokens holding this much probability (1 = off) "
                                 f"\\[default: {DEFAULTS.top_p}]")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(
        "-n", "--max-tokens", callback=_checked(_unless_none(checks.check_max_tokens)), metavar="N",
        show_default=False, help=f"Generate at most this many tokens \\[default: {DEFAULTS.max_tokens}]")] = None,
    seed: Annotated[Optional[int], typer.Option(
        metavar="N", help="Random seed: the same seed and settings give the same completion",
        show_default=False)] = None,
    stop: Annotated[Optional[Literal["sentence", "line", "none"]], typer.Option(
        metavar="[sentence|line|none]", show_default=False,
        help="End the completion at the first sentence end, line break, or only at max-tokens / end of text "
             f"\\[default: {DEFAULTS.stop}]")
    ] = None,
    style: Annotated[Optional[Literal["auto", "query", "text"]], typer.Option(
        envvar="AUTOCOMPLETE_STYLE", metavar="[auto|query|text]", show_default=False,
        help="query: complete a search query (ends at the line's end); text: continue plain text; "
             f"auto: query for a short one-line prompt, text otherwise \\[default: {DEFAULTS.style}]")] = None,
    examples: Annotated[Optional[str], typer.Option(
        "--examples", metavar="FILE", show_default=False,
        help="Your own example queries, one per line (say, a sample of your site's searches), "
             "in place of the built-in ones for the query style")] = None,
    suggest: Annotated[Optional[int], typer.Option(
        "--suggest", show_default=False, metavar="N", callback=_checked(_at_least_one("--suggest")),
        help="List the N likeliest distinct continuations with their probabilities, like a search box")] = None,
    words: Annotated[Optional[int], typer.Option(
        "--words", metavar="W", show_default=False, callback=_checked(_at_least_one("--words")),
        help="Longest suggestion, in words (with --suggest) \\[default: 3]")] = None,
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
    device: Annotated[Optional[Literal["auto", "cpu", "cuda", "mps"]], typer.Option(
        metavar="[auto|cpu|cuda|mps]", show_default=False, help=f"Where to run the model \\[default: {DEFAULTS.device}]")
    ] = None,
    precision: Annotated[Optional[Literal["auto", "fp32", "int8"]], typer.Option(
        envvar="AUTOCOMPLETE_PRECISION", metavar="[auto|fp32|int8]", show_default=False,
        help="fp32: exact. int8: 8-bit weights, faster on the CPU, a little less faithful (see README). auto: int8 "
             "on onnx, fp32 on torch "
             f"\\[default: {DEFAULTS.precision}]")] = None,
    engine: Annotated[Optional[Literal["auto", "onnx", "torch"]], typer.Option(
        envvar="AUTOCOMPLETE_ENGINE", metavar="[auto|onnx|torch]", show_default=False,
        help="Where the model runs: onnx (ONNX Runtime on the CPU), torch, or auto: onnx on the CPU for the models "
             f"it exports (GPT-2, Llama), torch otherwise \\[default: {DEFAULTS.engine}]")] = None,
    server: Annotated[Optional[Literal["start", "stop", "status"]], typer.Option(
        "--server", show_default=False, metavar="[start|stop|status]",
        help="Keep the model loaded in a background process (start), or stop it, or show it (status). "
             "Completions use it automatically while it runs")] = None,
    api: Annotated[Optional[str], typer.Option(
        "--api", envvar="AUTOCOMPLETE_API_BASE", metavar="URL", show_default=False,
        help="Run the model on an OpenAI-compatible server (vLLM, llama.cpp, TGI, ollama, transformers serve), "
             "e.g. http://localhost:8000/v1; -m names its model. Key: AUTOCOMPLETE_API_KEY")] = None,
    no_server: Annotated[bool, typer.Option(
        "--no-server", metavar="", help="Load the model in this process even if a server is running")] = False,
    idle_timeout: Annotated[Optional[float], typer.Option(
        "--idle-timeout", envvar="AUTOCOMPLETE_IDLE_TIMEOUT", min=0, metavar="SECONDS",
        show_default=False, help="With --server start (or AUTOCOMPLETE_AUTOSTART=1): exit after this long unused "
                                 f"(0 = never) \\[default: {DEFAULTS.idle_timeout:g}]")] = None,
    list_models: Annotated[bool, typer.Option(
        "--list-models", metavar="", help="List the model aliases and which are available offline")] = False,
    version: Annotated[bool, typer.Option(
        "--version", metavar="", callback=_version, is_eager=True, help="Show the version and exit")] = False,
) -> Settings:
    return from_options(prompt, model, temperature, top_k, top_p, max_tokens, seed, stop, style, examples, suggest, words,
                           explain, only_new, json_lines, each_line, interactive, device, precision, engine, server,
                           api, no_server, idle_timeout, list_models)


def _command():
    """The click command Typer makes, without Typer's type placeholders ("<str>" beside PROMPT, "<bool>" beside
    --help): a metavar says it where one helps."""
    command = typer.main.get_command(app)
    for param in command.params:
        if isinstance(param, typer.core.TyperArgument):
            param.display_type_rich = lambda ctx: None
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
