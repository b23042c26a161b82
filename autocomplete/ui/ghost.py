"""Ghost text for the REPL: while you type, the likeliest next few words appear after the cursor.

`continuation` is the whole idea (greedy words on one line); `streamed_continuation` asks a warm server or an --api
engine for the same.
`Ghost` makes it fit a keyboard: it waits for a pause in typing, and any newer keystroke cancels the work for an
older one between tokens (the REPL calls cancel() at each keystroke and when the prompt ends: prompt_toolkit runs one
suggestion at a time, and waits for it before it starts the next one or returns the line). A request to a server
is never waited for once cancelled: it ends in the background, at its next piece. Ghost text is best-effort: an
error shows none (Enter reports it), unless AUTOCOMPLETE_DEBUG is on.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from autocomplete.backend.backends import Backend, ServerGone
from autocomplete.cancel import Cancelled, never
from autocomplete.settings import Params, Settings, env_flag
from autocomplete.text.word import start

if TYPE_CHECKING:  # a REPL on a warm server never imports torch
    from autocomplete.engine.models import LoadedModel

GHOST_TOKENS = 12
ASKING_AT_MOST = 4  # requests to a server at once, cancelled ones still waiting for a busy server included


def continuation(lm: LoadedModel, text: str, words: int = 4, max_tokens: int = GHOST_TOKENS,
                 wanted: Callable[[], bool] = lambda: True, style: str = "auto",
                 examples: list[str] | None = None) -> str:
    """The greedy continuation of `text`: at most `words` words, never past a line break; '' if none (or no
    longer wanted). A word being typed is finished to the likeliest whole word (autocomplete.text.word), as in
    every mode."""
    from autocomplete.text.prompt import prepare  # loads numpy
    from autocomplete.text.sample import generate  # loads numpy

    if not text.strip() or text.endswith("\n"):
        return ""
    read = prepare(lm, text, style, examples, max_tokens, quiet=True)

    def check() -> None:
        if not wanted():
            raise Cancelled  # a newer keystroke: the word search stops

    try:
        begin = start(lm, read, check=check)
    except Cancelled:
        return ""
    new: list[int] = begin.given[: read.max_new]
    for token in generate(lm.engine, begin.ids, read.max_new - len(new), temperature=0, eos_ids=lm.eos_ids,
                          after=begin.after, allowed=begin.allowed):
        if not wanted():
            return ""
        new.append(token)
        out = read.shown(new)
        if "\n" in out or len(out.split()) > words:
            break
    return _first_words(read.shown(new), words)


def streamed_continuation(source: Backend, text: str, words: int = 4,
                          wanted: Callable[[], bool] = lambda: True, style: str = "auto",
                          examples: list[str] | None = None) -> str:
    """`continuation`, computed by a warm server or an --api engine (`source`): a greedy completion that stops at
    the line, read only until it has enough words (hanging up then, or when no longer wanted, stops the work)."""
    if not text.strip() or text.endswith("\n"):
        return ""
    params = Params(temperature=0, max_tokens=GHOST_TOKENS, stop="line", style=style,
                    examples=None if examples is None else tuple(examples))
    pieces: list[str] = []

    def on_piece(piece: str) -> None:
        pieces.append(piece)
        out = "".join(pieces)
        if not wanted() or "\n" in out or len(out.split()) > words:
            raise Cancelled

    try:
        source.complete(text, params, on_piece, never)
    except Cancelled:
        pass
    except ServerGone:
        return ""  # the server went away: the next keystroke's ghost comes from the REPL's own model
    return _first_words("".join(pieces), words) if wanted() else ""


def _first_words(out: str, words: int) -> str:
    match = re.match(rf"(?:\s*[^\s]+){{1,{words}}}", out.split("\n")[0])
    return match.group(0).rstrip("\ufffd") if match else ""


class Ghost:
    """Front of `continuation` for prompt_toolkit's suggestion thread: a call superseded by a newer one (or by
    cancel()) returns '' quickly."""

    def __init__(self, model: Callable[[], Backend | None], words: int = 4, debounce: float = 0.08,
                 settings: Callable[[], Settings] = Settings):
        self._model = model  # the REPL's model, or the warm server or --api engine it uses
        self._settings = settings  # the session's, read at each keystroke: /style applies at once
        self.words = words
        self.debounce = debounce
        self._latest = None
        self._changed = threading.Condition()  # wakes waiting calls: superseded, or a server's answer in
        self._lock = threading.Lock()  # the model in this process: one call at a time
        self._asking = 0  # requests to a server not over yet

    def cancel(self, wait: bool = False) -> None:
        """Drop the pending work; wait=True also waits for a call running on the model in this process to let go of
        it (at its next token), so the caller's own use of the model doesn't overlap it."""
        self._supersede(object())
        if wait:
            with self._lock:
                pass

    def _supersede(self, ticket: object) -> None:
        with self._changed:
            self._latest = ticket
            self._changed.notify_all()

    def _keystroke(self) -> Callable[[], bool] | None:
        """A new keystroke's ticket: wanted() says whether no newer one came since; None if one came during the
        pause in typing it waits for (typing fast: only the last keystroke's text is worth computing)."""
        ticket = object()
        self._supersede(ticket)

        def wanted() -> bool:
            return self._latest is ticket

        with self._changed:
            return None if self._changed.wait_for(lambda: not wanted(), self.debounce) else wanted

    def __call__(self, text: str) -> str:
        try:
            wanted = self._keystroke()
            if wanted is None:
                return ""
            settings, source = self._settings(), self._model()
            if source is None:  # the server just went away; the model is not loaded here yet
                return ""
            if not source.local:  # a server's answer is waited for in a thread of its own
                return self._served(source, text, wanted, settings)
            with self._lock:
                return continuation(source.lm, text, self.words, wanted=wanted, style=settings.style,
                                    examples=settings.examples) if wanted() else ""
        except Exception:
            if env_flag("AUTOCOMPLETE_DEBUG"):
                raise
            return ""  # best-effort: a server gone shows no ghost text; Enter says what is wrong

    def suggestions(self, text: str, n: int) -> list:
        """The REPL's list under the prompt: the n likeliest suggestions for `text` (autocomplete.text.suggest, or
        the warm server's, or the --api engine's), after the same pause in typing; [] once a newer keystroke came
        (the search stops at its next forward) or on any error."""
        try:
            wanted = self._keystroke()
            if wanted is None:
                return []

            def check() -> None:
                if not wanted():
                    raise Cancelled

            settings, source = self._settings(), self._model()
            if source is None:
                return []
            from autocomplete.text.suggest import KEYSTROKE_READS  # loads numpy

            with self._lock if source.local else contextlib.nullcontext():
                found = source.suggest(text, settings.params(), n, settings.words, check, KEYSTROKE_READS)
            return list(found) if wanted() else []
        except Cancelled:
            return []
        except Exception:
            if env_flag("AUTOCOMPLETE_DEBUG"):
                raise
            return []

    def _served(self, source: Backend, text: str, wanted: Callable[[], bool], settings: Settings) -> str:
        """streamed_continuation, in a thread of its own: a server slow to answer then holds neither prompt_toolkit's
        suggestion thread nor Enter once this call is cancelled. The request, left behind, hangs up at its next
        piece; a busy server's requests pile up to ASKING_AT_MOST, and newer ones wait for one of them to end."""
        answer: list = []

        def ask() -> None:
            try:
                answer.append(streamed_continuation(source, text, self.words, wanted=wanted, style=settings.style,
                                                    examples=settings.examples))
            except Exception as error:
                answer.append(error)
            finally:
                with self._changed:
                    self._asking -= 1
                    self._changed.notify_all()

        with self._changed:
            self._changed.wait_for(lambda: not wanted() or self._asking < ASKING_AT_MOST)
            if not wanted():
                return ""
            self._asking += 1
        threading.Thread(target=ask, daemon=True).start()
        with self._changed:
            self._changed.wait_for(lambda: answer or not wanted())
        if not answer:
            return ""
        if isinstance(answer[0], Exception):
            raise answer[0]
        return answer[0]
