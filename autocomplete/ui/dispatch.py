"""What one command line asks for (its Settings, built by from_options from the options that autocomplete.ui.args
or Typer read) and doing it: a completion, one per stdin line, the REPL, the model list or a server command.

No Typer here: a shell call whose arguments autocomplete.ui.args reads never imports it.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable

from autocomplete.errors import UsageError, UserError, first_line
from autocomplete.settings import Settings, env_flag
from autocomplete.terminal import report
from autocomplete.ui import actions, inputs


def from_options(prompt: str | None = None, model: str | None = None, temperature: list[float] | None = None,
                 top_k: int | None = None, top_p: float | None = None, max_tokens: int | None = None,
                 seed: int | None = None, stop: str | None = None, style: str | None = None,
                 examples: str | None = None, suggest: int | None = None, words: int | None = None,
                 explain: bool = False, only_new: bool = False, json_lines: bool = False, each_line: bool = False,
                 interactive: bool = False, device: str | None = None, precision: str | None = None,
                 engine: str | None = None, server: str | None = None, api: str | None = None,
                 no_server: bool = False, idle_timeout: float | None = None, list_models: bool = False) -> Settings:
    """The Settings a command line asks for, from its options (None: not given, the default), checked: a bad value
    is a ValueError, options that don't go together a UsageError. Both parsers end here (autocomplete.ui.args, and Typer
    in autocomplete.ui.cli), so they can't build it two ways."""
    from autocomplete import config, settings as checks

    d, file = Settings(), config.load()  # the config file fills in what neither an option nor the environment gave
    temperature = [checks.check_temperature(t) for t in temperature or [file.get("temperature", d.temperature)]]
    for option, value in (("--suggest", suggest), ("--words", words)):
        if value is not None and value < 1:
            raise ValueError(f"{option} must be 1 or more, not {value}")
    idle_timeout = file.get("idle_timeout", d.idle_timeout) if idle_timeout is None else idle_timeout
    if not idle_timeout >= 0:  # NaN too
        raise ValueError(f"--idle-timeout must be 0 or more, not {idle_timeout}")
    if len(temperature) > 1 and not explain:
        raise UsageError("give one --temperature (several only with --explain, to compare them)")
    if suggest and explain:
        raise UsageError("--suggest and --explain don't go together")
    if words is not None and not suggest:
        raise UsageError("--words sets the length of suggestions: use it with --suggest N")
    if prompt is not None:
        prompt = _valid_text(prompt)

    def given(value, name: str):
        return value if value is not None else file.get(name, getattr(d, name))

    return Settings(
        temperature[0], checks.check_top_k(given(top_k, "top_k")), checks.check_top_p(given(top_p, "top_p")),
        checks.check_max_tokens(given(max_tokens, "max_tokens")), seed, checks.check_stop(given(stop, "stop")),
        checks.check_style(given(style, "style")), suggest=suggest or 0, words=words or 3, explain=explain,
        temperatures=temperature, model=given(model, "model"), device=given(device, "device"),
        precision=given(precision, "precision"), engine=given(engine, "engine"), api=given(api, "api"),
        use_server=not no_server, idle_timeout=idle_timeout, json_lines=json_lines, only_new=only_new, prompt=prompt,
        examples_file=examples, each_line=each_line, interactive=interactive, list_models=list_models,
        server_action=server)


def _valid_text(text: str) -> str:
    """A command-line argument as text: bytes that are not UTF-8 reach Python as lone surrogates, which no tokenizer,
    JSON writer or terminal takes; they become U+FFFD, said once (as for stdin)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        from autocomplete import terminal

        terminal.notice("PROMPT is not valid UTF-8: bytes that aren't were replaced with \ufffd")
        try:
            raw = text.encode("utf-8", "surrogateescape")  # the argument's own bytes back
        except UnicodeEncodeError:  # a surrogate that stands for no byte
            raw = text.encode("utf-8", "surrogatepass")
        return raw.decode("utf-8", errors="replace")


def execute(settings: Settings) -> int:
    try:
        if settings.server_action:
            from autocomplete.serve.serve_cli import manage

            return manage(settings.server_action, settings)
        return _dispatch(settings)
    except BrokenPipeError:
        # The reader went away (| head): nothing more to say. Point stdout at /dev/null so the final flush
        # is quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _dispatch(settings: Settings) -> int:
    prompt = settings.prompt
    settings.read_examples()
    if settings.list_models:
        from autocomplete.ui.catalog import show_models

        show_models(settings.json_lines, settings.engine)
        return 0
    stdin_is_terminal = sys.stdin is not None and sys.stdin.isatty()
    no_stdin = sys.stdin is None  # started with stdin closed: nothing to read

    if settings.interactive or (prompt is None and stdin_is_terminal and not settings.each_line):
        from autocomplete.ui.repl import Repl


        if prompt is not None:
            raise UsageError("--interactive takes no PROMPT; type it at the > prompt")
        lines = None if stdin_is_terminal else [] if no_stdin else inputs.iter_lines(sys.stdin.buffer)
        return Repl(settings).run(lines)

    if settings.each_line:
        if stdin_is_terminal or no_stdin:
            raise UsageError("--each-line completes the lines of stdin: pipe them in")
        prompts = (_join(line, prompt) for line in inputs.iter_lines(sys.stdin.buffer))
        return _run_all(prompts, settings)

    piped = "" if stdin_is_terminal or no_stdin else inputs.read_all(sys.stdin.buffer)
    text = _join(piped, prompt)
    if not text.strip():
        raise UsageError("nothing to complete: give a PROMPT or pipe text in (see autocomplete --help)")
    return _run_all([text], settings)


def _join(piped: str, prompt: str | None) -> str:
    if prompt is None:
        return piped
    return f"{piped} {prompt}" if piped else prompt


def _run_all(prompts, settings: Settings) -> int:
    """Load the model once, then complete (or suggest, or explain) each prompt. Exit 130 if Ctrl-C cut one short."""
    import time

    from autocomplete.ui.render import renderer

    lm, loading, remote = None, 0.0, None
    out = renderer(settings.json_lines, settings.only_new)
    for text in prompts:
        if not text.strip():
            out.blank()  # keeps text output aligned with input lines
            continue
        interrupted = None
        if settings.api:
            remote = remote or actions.Remote.of(settings)
            interrupted = actions.run_over_api(remote, text, settings, out)
        elif lm is None and settings.servable():
            if env_flag("AUTOCOMPLETE_AUTOSTART"):
                from autocomplete.serve.serve_cli import ensure_running

                ensure_running(settings)
            interrupted = actions.run_on_server(text, settings, out)  # None: no server answered
        if interrupted is None:
            if lm is None:
                started = time.perf_counter()
                lm = settings.load()
                loading = time.perf_counter() - started
            interrupted = actions.run(lm, text, settings, out)
        if interrupted:
            return 130
    if loading > TIP_AFTER:
        from autocomplete import terminal

        if terminal.stderr().is_terminal:  # advice for people at a terminal, once; scripts are left alone
            terminal.notice_once("server-tip", f"Tip: loading the model took {loading:.1f} s; `autocomplete --server start` "
                           "keeps it loaded, so later calls answer in about 0.1 s.")
    return 0


TIP_AFTER = 0.5  # seconds: a warm server answers in ~0.1 s


def guarded(work: Callable[[], int]) -> int:
    """Run the command: every failure becomes one line on stderr and an exit status, never a traceback."""
    try:
        debug = env_flag("AUTOCOMPLETE_DEBUG")
    except UsageError as error:
        report(str(error))
        return error.exit_code
    if not debug:
        warnings.simplefilter("ignore")  # library deprecation notes are for developers, not our users
    try:
        return work()
    except UserError as error:
        report(str(error))
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if debug:
            raise
        report(f"unexpected {type(error).__name__}: {first_line(error)} (AUTOCOMPLETE_DEBUG=1 shows the traceback)")
        return 1
