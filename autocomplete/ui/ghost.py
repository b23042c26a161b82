"""Ghost text for the REPL: while you type, the likeliest next few words appear after the cursor.

`continuation` is the whole idea (greedy words on one line); `streamed_continuation` asks a warm server or an --api
engine for the same.
`Ghost` makes it fit a keyboard: it waits for a pause in typing, and any newer keystroke cancels the work for an
older one between tokens.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from autocomplete.settings import Settings
from autocomplete.ui.actions import Remote, Served

if TYPE_CHECKING:  # a REPL on a warm server never imports torch
    from autocomplete.engine.models import LoadedModel

MAX_TOKENS = 12


def continuation(lm: LoadedModel, text: str, words: int = 4, max_tokens: int = MAX_TOKENS,
                 wanted: Callable[[], bool] = lambda: True, style: str = "auto",
                 examples: list[str] | None = None) -> str:
    """The greedy continuation of `text`: at most `words` words, never past a line break; '' if none (or no
    longer wanted). A word being typed is finished from its letters (token healing), as in every mode."""
    from autocomplete.engine.generate import generate
    from autocomplete.text.prompt import prepare

    if not text.strip() or text.endswith("\n"):
        return ""
    read = prepare(lm, text, style, examples, max_tokens, quiet=True)
    new: list[int] = []
    for token in generate(lm.model, read.ids, read.max_new, temperature=0, eos_ids=lm.eos_ids,
                          cache=read.cache(), allowed=read.allowed):
        if not wanted():
            return ""
        new.append(token)
        out = read.shown(new)
        if "\n" in out or len(out.split()) > words:
            break
    return _first_words(read.shown(new), words)


def streamed_continuation(source: Served | Remote, text: str, words: int = 4,
                          wanted: Callable[[], bool] = lambda: True, style: str = "auto",
                          examples: list[str] | None = None) -> str:
    """`continuation`, computed by a warm server or an --api engine (`source`): a greedy completion that stops at
    the line, read only until it has enough words (hanging up then, or when no longer wanted, stops the work)."""
    if not text.strip() or text.endswith("\n"):
        return ""
    settings = Settings(temperature=0, max_tokens=MAX_TOKENS, stop="line", style=style, examples=examples)
    pieces: list[str] = []

    def on_piece(piece: str) -> None:
        pieces.append(piece)
        out = "".join(pieces)
        if not wanted() or "\n" in out or len(out.split()) > words:
            raise _Enough

    try:
        if not source.stream(text, settings, on_piece):
            return ""  # the server went away: the next keystroke's ghost comes from the REPL's own model
    except _Enough:
        pass
    return _first_words("".join(pieces), words) if wanted() else ""


class _Enough(Exception):
    """Enough of a served continuation has arrived."""


def _first_words(out: str, words: int) -> str:
    match = re.match(rf"(?:\s*[^\s]+){{1,{words}}}", out.split("\n")[0])
    return match.group(0).rstrip("\ufffd") if match else ""


class Ghost:
    """Thread-safe front of `continuation`: call it from any thread; a call superseded by a newer one (or by
    cancel()) returns '' quickly."""

    def __init__(self, model: Callable[[], LoadedModel | Served | Remote], words: int = 4, debounce: float = 0.08,
                 settings: Callable[[], Settings] = Settings):
        self._model = model  # the REPL's model, or the warm server or --api engine it uses
        self._settings = settings  # the session's, read at each keystroke: /style applies at once
        self.words = words
        self.debounce = debounce
        self._latest = None
        self._lock = threading.Lock()  # one model call at a time

    def cancel(self, wait: bool = False) -> None:
        """Drop the pending work; wait=True also waits for a running call to let go of the model (it stops at its
        next token), so the caller's own use of the model doesn't overlap it."""
        self._latest = object()
        if wait:
            with self._lock:
                pass

    def __call__(self, text: str) -> str:
        ticket = object()
        self._latest = ticket
        time.sleep(self.debounce)  # typing fast: only the last keystroke's text is worth computing

        def wanted() -> bool:
            return self._latest is ticket

        if not wanted():
            return ""
        with self._lock:
            if not wanted():
                return ""
            settings, source = self._settings(), self._model()
            if source is None:  # the server just went away; the model is not loaded here yet
                return ""
            ask = streamed_continuation if isinstance(source, (Served, Remote)) else continuation
            return ask(source, text, self.words, wanted=wanted, style=settings.style, examples=settings.examples)
