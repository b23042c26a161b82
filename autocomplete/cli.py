"""Command line: arguments -> settings -> one completion, one per stdin line, or the REPL.

Imports no torch at module level: --help, --version, usage errors and --list-models stay fast.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Annotated, Literal, Optional

import typer

from autocomplete import __version__, actions, inputs, settings as checks
from autocomplete.errors import UsageError, UserError
from autocomplete.settings import DEFAULT_MODEL, Settings

DEFAULTS = Settings()

app = typer.Typer(
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Complete text with a language model, streamed word by word like a search box filling in.",
)


def _checked(check):
    """Turn a settings check into a Typer callback, so the CLI and the REPL reject the same values."""

    def callback(value):
        try:
            return check(value)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None

    return callback


def _version(value: bool) -> None:
    if value:
        print(f"autocomplete {__version__}")
        raise typer.Exit()


@app.command()
def main(
    prompt: Annotated[Optional[str], typer.Argument(
        help="Text to complete. With piped stdin, stdin comes first, then a space, then PROMPT.",
        show_default=False)] = None,
    model: Annotated[Optional[str], typer.Option(
        "-m", "--model", envvar="AUTOCOMPLETE_MODEL", show_default=False,
        help=f"Alias, Hub id, saved model directory or .gguf file [default: {DEFAULT_MODEL}]")] = None,
    temperature: Annotated[list[float], typer.Option(
        "-t", "--temperature", callback=_checked(lambda ts: [checks.check_temperature(t) for t in ts]),
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
    suggest: Annotated[int, typer.Option(
        "--suggest", min=0, show_default=False, metavar="N",
        help="List the N likeliest distinct continuations with their probabilities, like a search box")] = 0,
    words: Annotated[int, typer.Option(
        "--words", min=1, metavar="W", help="Longest suggestion, in words (with --suggest)")] = 3,
    explain: Annotated[bool, typer.Option(
        "--explain", help="Show each step: the likeliest next tokens, their probabilities per temperature, "
                          "the pick and the entropy")] = False,
    only_new: Annotated[bool, typer.Option("--only-new", help="Print only the generated text")] = False,
    json_lines: Annotated[bool, typer.Option(
        "--json", help="One JSON object per completion (JSON Lines) with tokens, settings and stats")] = False,
    each_line: Annotated[bool, typer.Option(
        "--each-line", help="Complete every stdin line on its own, one output line each")] = False,
    interactive: Annotated[bool, typer.Option(
        "-i", "--interactive", help="Start the REPL (what a bare `autocomplete` does on a terminal)")] = False,
    device: Annotated[Literal["auto", "cpu", "cuda", "mps"], typer.Option(
        help="Where to run the model")] = "auto",
    precision: Annotated[Literal["fp32", "int8"], typer.Option(
        envvar="AUTOCOMPLETE_PRECISION",
        help="fp32: exact. int8: int8 weights, faster decoding on CPU, slightly less faithful (see README)")] = "fp32",
    server: Annotated[Optional[Literal["start", "stop", "status"]], typer.Option(
        "--server", show_default=False,
        help="Keep the model loaded in a background process (start), or stop it, or show it (status). "
             "Completions use it automatically while it runs")] = None,
    no_server: Annotated[bool, typer.Option(
        "--no-server", help="Load the model in this process even if a server is running")] = False,
    idle_timeout: Annotated[float, typer.Option(
        "--idle-timeout", envvar="AUTOCOMPLETE_IDLE_TIMEOUT", min=0, metavar="SECONDS",
        help="With --server start (or AUTOCOMPLETE_AUTOSTART=1): exit after this long unused (0 = never)")] = 300,
    list_models: Annotated[bool, typer.Option(
        "--list-models", help="List the model aliases and which are available offline")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Show the version and exit")] = False,
) -> int:
    if len(temperature) > 1 and not explain:
        raise UsageError("give one --temperature (several only with --explain, to compare them)")
    if suggest and explain:
        raise UsageError("--suggest and --explain don't go together")
    options = actions.Options(
        settings=Settings(temperature[0], top_k, top_p, max_tokens, seed, stop),
        mode=actions.Mode(suggest=suggest, words=words, explain=explain, temperatures=temperature),
        model=model, device=device, precision=precision, json_lines=json_lines, only_new=only_new,
        server=not no_server, idle_timeout=idle_timeout)
    try:
        if server:
            from autocomplete.serve_cli import manage

            return manage(server, options)
        return _dispatch(prompt, options, each_line, interactive, list_models)
    except BrokenPipeError:
        # The reader went away (| head): nothing more to say. Point stdout at /dev/null so the final flush
        # is quiet too. (Caught here because Typer would turn it into exit status 1.)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _dispatch(prompt: str | None, options: actions.Options, each_line: bool, interactive: bool,
              list_models: bool) -> int:
    if list_models:
        from autocomplete.catalog import show_models

        show_models(options.json_lines)
        return 0
    stdin_is_terminal = sys.stdin is not None and sys.stdin.isatty()
    no_stdin = sys.stdin is None  # started with stdin closed: nothing to read

    if interactive or (prompt is None and stdin_is_terminal and not each_line):
        from autocomplete.repl import Repl

        if prompt is not None:
            raise UsageError("--interactive takes no PROMPT; type it at the > prompt")
        lines = None if stdin_is_terminal else [] if no_stdin else inputs.iter_lines(sys.stdin.buffer)
        return Repl(options).run(lines)

    if each_line:
        if stdin_is_terminal or no_stdin:
            raise UsageError("--each-line completes the lines of stdin: pipe them in")
        prompts = (_join(line, prompt) for line in inputs.iter_lines(sys.stdin.buffer))
        return _run_all(prompts, options)

    piped = "" if stdin_is_terminal or no_stdin else inputs.read_all(sys.stdin.buffer)
    text = _join(piped, prompt)
    if not text.strip():
        raise UsageError("nothing to complete: give a PROMPT or pipe text in (see autocomplete --help)")
    return _run_all([text], options)


def _join(piped: str, prompt: str | None) -> str:
    if prompt is None:
        return piped
    return f"{piped} {prompt}" if piped else prompt


def _run_all(prompts, options: actions.Options) -> int:
    """Load the model once, then complete (or suggest, or explain) each prompt. Exit 130 if Ctrl-C cut one short."""
    from autocomplete.render import renderer

    lm = None
    out = renderer(options.json_lines, options.only_new)
    for text in prompts:
        if not text.strip():
            out.blank()  # keeps text output aligned with input lines
            continue
        interrupted = None
        if lm is None and options.servable():
            if os.environ.get("AUTOCOMPLETE_AUTOSTART") == "1":
                from autocomplete.serve_cli import ensure_running

                ensure_running(options)
            interrupted = actions.run_on_server(text, options, out)  # None: no server answered
        if interrupted is None:
            lm = lm or options.load()
            interrupted = actions.run(lm, text, options.settings, options.mode, out)
        if interrupted:
            return 130
    return 0


def _error(message: str) -> None:
    from autocomplete import ui

    ui.stderr().print(f"autocomplete: {message}", style="red", markup=False, highlight=False)


def run(argv: list[str] | None = None) -> int:
    """The console script: every failure becomes one line on stderr and an exit status, never a traceback."""
    command = typer.main.get_command(app)
    if not os.environ.get("AUTOCOMPLETE_DEBUG"):
        warnings.simplefilter("ignore")  # library deprecation notes are for developers, not our users
    try:
        result = command.main(args=argv, prog_name="autocomplete", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.Exit as done:
        return done.exit_code
    except typer.TyperException as error:  # Typer's usage errors: bad option, bad value, missing argument
        _error(f"{error.format_message()} (see autocomplete --help)")
        return error.exit_code
    except UserError as error:
        _error(str(error))
        return error.exit_code
    except (typer.Abort, KeyboardInterrupt):
        return 130
    except Exception as error:
        if os.environ.get("AUTOCOMPLETE_DEBUG"):
            raise
        detail = (str(error).strip().splitlines() or [""])[0]
        _error(f"unexpected {type(error).__name__}: {detail} (AUTOCOMPLETE_DEBUG=1 shows the traceback)")
        return 1
