"""Doing what one command line asks for (its Settings, autocomplete.ui.options): a completion, one per stdin line,
the REPL, the model list or a server command; and guarded(), which makes every failure one line on stderr.

No Typer here: a shell call whose arguments autocomplete.ui.args reads never imports it.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable

from autocomplete import terminal
from autocomplete.backend.backends import InProcess, ServerGone, in_process
from autocomplete.errors import UsageError, UserError, first_line
from autocomplete.settings import Settings, env_flag
from autocomplete.terminal import report
from autocomplete.text import frames
from autocomplete.ui import actions, inputs
from autocomplete.ui.render import renderer


def execute(settings: Settings) -> int:
    try:
        if settings.server:
            from autocomplete.serve.serve_cli import manage  # start-up time

            return manage(settings.server, settings)
        return _dispatch(settings)
    except BrokenPipeError:
        # The reader went away (| head): nothing more to say. Point stdout at /dev/null so the final flush
        # is quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _dispatch(settings: Settings) -> int:
    prompt = settings.prompt
    if settings.examples_file is not None and settings.examples is None:
        settings.examples = frames.read_examples(settings.examples_file)  # here: a server has another directory
    if settings.list_models:
        from autocomplete.ui.catalog import show_models  # start-up time

        show_models(settings.json_lines, settings.engine)
        return 0
    if settings.web:
        from autocomplete.ui.web import serve  # start-up time

        return serve(settings)
    stdin_is_terminal = sys.stdin is not None and sys.stdin.isatty()
    no_stdin = sys.stdin is None  # started with stdin closed: nothing to read

    if settings.interactive or (prompt is None and stdin_is_terminal and not settings.each_line):
        from autocomplete.ui.repl import Repl  # start-up time

        if prompt is not None:
            raise UsageError("--interactive takes no PROMPT; type it at the > prompt")
        lines = None if stdin_is_terminal else [] if no_stdin else inputs.iter_lines(sys.stdin.buffer)
        return Repl(settings).run(lines)

    if settings.each_line:
        if stdin_is_terminal or no_stdin:
            raise UsageError("--each-line completes the lines of stdin: pipe them in")
        prompts = ((_join(line, prompt), None if following is None else _join(following, prompt))
                   for line, following in inputs.lines_ahead(sys.stdin))
        return _run_all(prompts, settings)

    piped = "" if stdin_is_terminal or no_stdin else inputs.read_all(sys.stdin.buffer)
    text = _join(piped, prompt)
    if not text.strip():
        raise UsageError("nothing to complete: give a PROMPT or pipe text in (see autocomplete --help)")
    return _run_all([(text, None)], settings)


def _join(piped: str, prompt: str | None) -> str:
    if prompt is None:
        return piped
    return f"{piped} {prompt}" if piped else prompt


def _run_all(prompts, settings: Settings) -> int:
    """Load the model once, then complete (or suggest, or explain) each prompt (each with the one after it where that
    is known already). Exit 130 if Ctrl-C cut one short. A prompt that types on the one before, or that the one after
    types on (--each-line fed a query keystroke by keystroke), is listed as the REPL lists a keystroke: bounded,
    the rows read for the one before free."""
    import time

    backend, loading, before = None, 0.0, ""
    out = renderer(settings.json_lines, settings.only_new)

    def load_here() -> InProcess:
        nonlocal loading
        started = time.perf_counter()
        loaded = in_process(settings)
        loading = time.perf_counter() - started
        return loaded

    for text, following in prompts:
        if not text.strip():
            out.blank()  # keeps text output aligned with input lines
            continue
        if backend is None:
            if not settings.api and settings.servable() and env_flag("AUTOCOMPLETE_AUTOSTART"):
                from autocomplete.serve.serve_cli import ensure_running  # start-up time

                ensure_running(settings)
            backend = actions.elsewhere(settings) or load_here()
        keystroke = _typed_on(before, text) or _typed_on(text, following or "")
        before = text
        try:
            interrupted = actions.run(backend, text, settings, out, keystroke)
        except ServerGone:  # it stopped or idled out before answering: from now on, the model runs here
            backend = load_here()
            interrupted = actions.run(backend, text, settings, out, keystroke)
        if interrupted:
            return 130
    if loading > TIP_AFTER:
        if terminal.stderr().is_terminal:  # advice for people at a terminal, once; scripts are left alone
            terminal.notice_once("server-tip", f"Tip: loading the model took {loading:.1f} s; "
                                 "`autocomplete --server start` keeps it loaded, so later calls answer in about 0.1 s.")
    return 0


def _typed_on(before: str, text: str) -> bool:
    """Whether `text` is `before` with letters typed or taken back at its end: the next keystroke of one query."""
    return bool(before and text) and text != before and (text.startswith(before) or before.startswith(text))


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
