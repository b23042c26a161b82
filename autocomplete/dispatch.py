"""What one command line asks for (an Invocation, which cli builds from the arguments) and doing it: a completion,
one per stdin line, the REPL, the model list or a server command.

No Typer here: with a warm server running, the launcher gets the Invocation from the server's parse and runs it
from this module, so a shell call never imports Typer (see autocomplete.launch).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

from autocomplete import actions, inputs
from autocomplete.errors import UsageError, UserError
from autocomplete.settings import Settings


@dataclass
class Invocation:
    options: actions.Options
    prompt: str | None = None
    each_line: bool = False
    interactive: bool = False
    list_models: bool = False
    server: str | None = None  # --server start|stop|status

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> Invocation:
        """The inverse of as_dict (the warm server's parse reply). TypeError or KeyError if it doesn't fit."""
        options = dict(raw["options"])
        options.update(settings=Settings(**options["settings"]), mode=actions.Mode(**options["mode"]))
        return cls(**{**raw, "options": actions.Options(**options)})


def execute(invocation: Invocation) -> int:
    options = invocation.options
    try:
        if invocation.server:
            from autocomplete.serve_cli import manage

            return manage(invocation.server, options)
        return _dispatch(invocation)
    except BrokenPipeError:
        # The reader went away (| head): nothing more to say. Point stdout at /dev/null so the final flush
        # is quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _dispatch(invocation: Invocation) -> int:
    prompt, options = invocation.prompt, invocation.options
    options.read_examples()
    if invocation.list_models:
        from autocomplete.catalog import show_models

        show_models(options.json_lines)
        return 0
    stdin_is_terminal = sys.stdin is not None and sys.stdin.isatty()
    no_stdin = sys.stdin is None  # started with stdin closed: nothing to read

    if invocation.interactive or (prompt is None and stdin_is_terminal and not invocation.each_line):
        from autocomplete.repl import Repl


        if prompt is not None:
            raise UsageError("--interactive takes no PROMPT; type it at the > prompt")
        lines = None if stdin_is_terminal else [] if no_stdin else inputs.iter_lines(sys.stdin.buffer)
        return Repl(options).run(lines)

    if invocation.each_line:
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
    import time

    from autocomplete.render import renderer

    lm, loading, remote = None, 0.0, None
    out = renderer(options.json_lines, options.only_new)
    for text in prompts:
        if not text.strip():
            out.blank()  # keeps text output aligned with input lines
            continue
        interrupted = None
        if options.api:
            remote = remote or actions.Remote.of(options)
            interrupted = actions.run_over_api(remote, text, options, out)
        elif lm is None and options.servable():
            if os.environ.get("AUTOCOMPLETE_AUTOSTART") == "1":
                from autocomplete.serve_cli import ensure_running

                ensure_running(options)
            interrupted = actions.run_on_server(text, options, out)  # None: no server answered
        if interrupted is None:
            if lm is None:
                started = time.perf_counter()
                lm = options.load()
                loading = time.perf_counter() - started
            interrupted = actions.run(lm, text, options.settings, options.mode, out)
        if interrupted:
            return 130
    if loading > TIP_AFTER:
        from autocomplete import ui

        if ui.stderr().is_terminal:  # advice for people at a terminal, once; scripts are left alone
            ui.notice_once("server-tip", f"Tip: loading the model took {loading:.1f} s; `autocomplete --server start` "
                           "keeps it loaded, so later calls answer in about 0.1 s.")
    return 0


TIP_AFTER = 0.5  # seconds: a warm server answers in ~0.1 s


def report(message: str) -> None:
    from autocomplete import ui

    ui.stderr().print(f"autocomplete: {message}", style="red", markup=False, highlight=False)


def guarded(work: Callable[[], int]) -> int:
    """Run the command: every failure becomes one line on stderr and an exit status, never a traceback."""
    debug = bool(os.environ.get("AUTOCOMPLETE_DEBUG"))
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
        detail = (str(error).strip().splitlines() or [""])[0]
        report(f"unexpected {type(error).__name__}: {detail} (AUTOCOMPLETE_DEBUG=1 shows the traceback)")
        return 1
