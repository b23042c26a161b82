"""What every layer says to the user on the terminal, beside the completion: notices, spinners, errors, all on
stderr; and visible(), which makes text from models and servers harmless there (stdout too).

A leaf: it imports nothing of ours but paths, so the engine can say what it is doing without knowing the UI."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from functools import cache
from typing import TYPE_CHECKING

from autocomplete import paths

if TYPE_CHECKING:
    from rich.console import Console


@cache
def stderr() -> Console:
    from rich.console import Console  # imported when first used: the warm-server path often never is

    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console(**options) -> Console:
    """A Rich console on stdout (or options' file) whose closed pipe (`| head`) ends the run quietly, as every other
    write's does (autocomplete.ui.dispatch: exit 0); Rich's own exits with status 1."""
    from rich.console import Console  # imported when first used

    class Output(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    return Output(**options)


# Characters a terminal acts on rather than shows: C0 and C1 controls (ESC starts cursor moves, title changes,
# hyperlinks…; some terminals obey C1 too), but not the line breaks and tabs text is made of; and the bidirectional
# overrides and isolates, which make a line read otherwise than it is (U+202E flips what follows).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """Text safe to show on a terminal: each such character written out as its escape (ESC -> \\x1b, U+202E ->
    \\u202e). Everything that reaches stderr goes through it: messages quote servers, models and file names."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


_redirect = threading.local()


def notice(message: str) -> None:
    """One line on stderr, dim on a terminal, plain otherwise; or, inside notices_to(), handed to its callback
    (the warm server sends a request's notices back to the user who made it)."""
    collect = getattr(_redirect, "collect", None)
    if collect is not None:
        collect(message)
        return
    stderr().print(visible(message), style="dim", markup=False)


@contextlib.contextmanager
def notices_to(collect):
    """This thread's notices go to collect(message) instead of stderr."""
    previous, _redirect.collect = getattr(_redirect, "collect", None), collect
    try:
        yield
    finally:
        _redirect.collect = previous


def notice_once(key: str, message: str) -> None:
    """A notice shown once per user (a marker in the data directory): advice that every call would repeat."""
    marker = paths.data_dir() / "notices" / _file_name(key)
    if marker.exists():
        return
    notice(message)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass  # shown again next time: better than not at all


def _file_name(key: str) -> str:
    """A marker's file name: keys hold host names from URLs, which must not become paths (or odd names)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", key)[:80].lstrip(".")
    if safe == key:
        return key
    import hashlib

    return f"{safe}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


_spinner = None  # the spinner on screen: a status() inside another changes its text instead of drawing a second


@contextlib.contextmanager
def status(message: str, plain: bool = False):
    """A spinner on stderr while something slow runs. Nested, the inner message shows until the inner step is done,
    then the outer one again: one display, never two. When stderr is not a terminal: nothing, or with plain=True
    (a step of many seconds, a log should say so) the message as a notice. Yields a function that changes the
    message (once the step knows more, say which model it is loading)."""
    global _spinner
    console = stderr()
    if not console.is_terminal:
        if plain:
            notice(message)  # made visible there
        yield lambda message: None
        return
    if _spinner is not None:
        outer, said = _spinner, _spinner.status
        outer.update(visible(message))
        try:
            yield lambda message: outer.update(visible(message))
        finally:
            outer.update(said)
        return
    with console.status(visible(message), spinner="dots") as _spinner:
        spinner = _spinner
        try:
            yield lambda message: spinner.update(visible(message))
        finally:
            _spinner = None


@contextlib.contextmanager
def paused():
    """Take the spinner off the screen while a library draws progress of its own (the Hub's download bars)."""
    spinner = _spinner
    if spinner is None:
        yield
        return
    spinner.stop()
    try:
        yield
    finally:
        spinner.start()


def report(message: str) -> None:
    """An error, in one red line: what the command says before it exits non-zero."""
    stderr().print(f"autocomplete: {visible(_without_key(message))}", style="red", markup=False, highlight=False)


def _without_key(message: str) -> str:
    """Belt and braces: an error that quotes the --api key (a library's message about a header, say) shows it as
    ***. The key is checked before any request (autocomplete.engine.api), so this should never have work to do."""
    key = os.environ.get("AUTOCOMPLETE_API_KEY", "").strip()
    return message.replace(key, "***") if len(key) >= 4 else message
