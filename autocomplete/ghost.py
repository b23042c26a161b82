"""Ghost text for the REPL: while you type, the likeliest next few words appear after the cursor.

`continuation` is the whole idea (greedy words on one line). `Ghost` makes it fit a keyboard: it waits for a pause
in typing, and any newer keystroke cancels the work for an older one between tokens.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

from autocomplete.complete import fit_to_context
from autocomplete.generate import generate
from autocomplete.models import LoadedModel


def continuation(lm: LoadedModel, text: str, words: int = 4, max_tokens: int = 12,
                 wanted: Callable[[], bool] = lambda: True) -> str:
    """The greedy continuation of `text`: at most `words` words, never past a line break; '' if none (or no
    longer wanted)."""
    stripped = text.rstrip()
    trailing = text[len(stripped):]
    if not stripped or "\n" in trailing:
        return ""
    # Typed "san ": continue "san" and drop the space the model writes, since a prompt ending in a space reads
    # as an odd token to BPE models.
    ids, budget = fit_to_context(lm.encode(stripped), lm.context_length, max_tokens, lm.tokenizer.bos_token_id)
    new: list[int] = []
    for token in generate(lm.model, ids, budget, temperature=0, eos_ids=lm.eos_ids):
        if not wanted():
            return ""
        new.append(token)
        out = lm.decode(new)
        if "\n" in out or len(out.split()) > words:
            break
    out = lm.decode(new).split("\n")[0]
    match = re.match(rf"(?:\s*[^\s]+){{1,{words}}}", out)
    out = match.group(0).rstrip("\ufffd") if match else ""
    if not out.startswith(trailing):
        return ""
    return out[len(trailing):]


class Ghost:
    """Thread-safe front of `continuation`: call it from any thread; a call superseded by a newer one (or by
    cancel()) returns '' quickly."""

    def __init__(self, model: Callable[[], LoadedModel], words: int = 4, debounce: float = 0.08):
        self._model = model
        self.words = words
        self.debounce = debounce
        self._latest = None
        self._lock = threading.Lock()  # one model call at a time

    def cancel(self) -> None:
        self._latest = object()

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
            return continuation(self._model(), text, self.words, wanted=wanted)
