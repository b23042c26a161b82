"""Token ids in, text out: released a word at a time, never half a character, cut where the stop rule says.

Like transformers' TextStreamer, but the pieces are returned rather than printed, and the stop rule lives here
because it is a rule about text.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# A sentence ends at . ! ? … once whitespace follows (so "3.5" and "e.g" mid-word don't end it), at CJK
# full stops at once, or at a line break.
_SENTENCE_END = re.compile(r"[.!?…](?=\s)|[。！？]|\r|\n")
_LINE_END = re.compile(r"\r|\n")  # \r\n and a lone \r end a line too: the completion ends before them
_RULES = {"sentence": _SENTENCE_END, "line": _LINE_END, "none": None}

# Text without spaces (emoji runs, CJK) is released anyway once this much of it is waiting.
_MAX_HELD = 16


def stop_index(text: str, rule: str, query: bool = False) -> int | None:
    """Where the completion ends under `rule`, or None if it goes on.

    Only stops after the completion has begun (its first non-space character): a model that opens with a line
    break would otherwise always produce nothing. A query (query=True) ends at its line's end, even at once: the
    query as typed is the likeliest whole query.
    """
    if query and (line := _LINE_END.search(text)):
        cut = stop_index(text, rule)
        return min(line.start(), len(text) if cut is None else cut)
    pattern = _RULES[rule]
    if pattern is None:
        return None
    start = len(text) - len(text.lstrip())
    if start == len(text):
        return None
    match = pattern.search(text, start)
    if match is None:
        return None
    return match.start() if match.group() in "\r\n" else match.end()


class TextStream:
    """Feed token ids with put(); it returns the text that became final. Joined, every returned piece equals
    `self.text`, the decoded completion (cut at the stop rule)."""

    def __init__(self, decode: Callable[[list[int]], str], stop: str = "none", query: bool = False):
        self._decode = decode
        self._stop = stop
        self._query = query
        self.ids: list[int] = []
        self.text = ""  # released so far
        self.stopped = False

    def put(self, token_id: int) -> str:
        self.ids.append(token_id)
        full = self._decode(self.ids)
        cut = stop_index(full, self._stop, self._query)
        if cut is not None:
            self.stopped = True
            return self._release(full[: max(cut, len(self.text))])
        if full.endswith("\ufffd"):
            return ""  # the last token ended inside a multi-byte character: wait for its other bytes
        held = full[len(self.text):]
        end = len(held)
        while end > 0 and not held[end - 1].isspace():
            end -= 1
        if end > 0:
            # Release up to the whitespace before the word still growing; the space leads the next piece.
            end -= 1
            while end > 0 and held[end - 1].isspace():
                end -= 1
        if end == 0 and len(held) > _MAX_HELD:
            end = len(held)
        return self._release(self.text + held[:end])

    def flush(self) -> str:
        """The rest, once generation is over (or interrupted): without the first bytes of a character the tokens
        ran out in the middle of (`-n` reached mid-emoji), which are no character at all."""
        if self.stopped or not self.ids:
            return ""
        return self._release(max(self._decode(self.ids).rstrip("\ufffd"), self.text, key=len))

    def _release(self, upto: str) -> str:
        piece = upto[len(self.text):]
        self.text = upto
        return piece
