"""Everything that is not the completion goes to stderr: notices, spinners, progress."""

from __future__ import annotations

import contextlib
import threading
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


@cache
def stderr() -> Console:
    from rich.console import Console  # imported when first used: the warm-server path often never is

    return Console(stderr=True, highlight=False, soft_wrap=True)


_redirect = threading.local()


def notice(message: str) -> None:
    """One line on stderr, dim on a terminal, plain otherwise; or, inside notices_to(), handed to its callback
    (the warm server sends a request's notices back to the user who made it)."""
    collect = getattr(_redirect, "collect", None)
    if collect is not None:
        collect(message)
        return
    stderr().print(message, style="dim", markup=False)


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
    from autocomplete import paths

    marker = paths.data_dir() / "notices" / key
    if marker.exists():
        return
    notice(message)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass  # shown again next time: better than not at all


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
            notice(message)
        yield lambda message: None
        return
    if _spinner is not None:
        outer, said = _spinner, _spinner.status
        outer.update(message)
        try:
            yield outer.update
        finally:
            outer.update(said)
        return
    with console.status(message, spinner="dots") as _spinner:
        try:
            yield _spinner.update
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
