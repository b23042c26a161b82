"""Ghost text for the REPL: while you type, the likeliest next few words appear after the cursor.

`continuation` is the whole idea (greedy words on one line). `Ghost` makes it fit a keyboard: it waits for a pause
in typing, and any newer keystroke cancels the work for an older one between tokens.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

from autocomplete.generate import generate
from autocomplete.models import LoadedModel
from autocomplete.prompt import prepare
from autocomplete.settings import Settings


def continuation(lm: LoadedModel, text: str, words: int = 4, max_tokens: int = 12,
                 wanted: Callable[[], bool] = lambda: True, style: str = "auto",
                 examples: list[str] | None = None) -> str:
    """The greedy continuation of `text`: at most `words` words, never past a line break; '' if none (or no
    longer wanted). A word being typed is finished from its letters (token healing), as in every mode."""
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
    out = read.shown(new).split("\n")[0]
    match = re.match(rf"(?:\s*[^\s]+){{1,{words}}}", out)
    return match.group(0).rstrip("\ufffd") if match else ""


class Ghost:
    """Thread-safe front of `continuation`: call it from any thread; a call superseded by a newer one (or by
    cancel()) returns '' quickly."""

    def __init__(self, model: Callable[[], LoadedModel], words: int = 4, debounce: float = 0.08,
                 settings: Callable[[], Settings] = Settings):
        self._model = model
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
            settings = self._settings()
            return continuation(self._model(), text, self.words, wanted=wanted, style=settings.style,
                                examples=settings.examples)
