"""Reads remembered by the tokens read (vLLM's automatic prefix caching, for one process): a request whose prompt
(before the word being typed) was read before is not read again, and a suggestion search that grows from where an
earlier one did (the next keystroke, which only added letters to the word) reads none of the rows that one read.

Only whole reads are reused, not a remembered start of a longer one: read after a remembered state, the rest
rounds a little differently than read at once, which after a frame the tiny test model never saw changed a greedy
completion (the server's answer would hang on what it was asked before), and it saves little: the frame, most of
what is read, has its own cache (autocomplete.text.prompt), and on the starter 8 tokens read at once take 29 ms
against 16 ms for one (the AMX machine's bench, 2026-12-02).

A Root is one read: the logits after it, its state (never changed: read() leaves the state it reads after as it
is, and a Tree only reads it) and the Tree grown from it, every row's logits kept. Roots are kept by (what they
were read after, their tokens), the least recently used dropped once they hold more than BUDGET bytes (their
keys and values, their rows' keys and values and logits).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

import numpy as np

BUDGET = 256 * 2**20


class Remembered:
    """A Tree whose rows' logits are kept: a row asked for again is not read again."""

    def __init__(self, tree, per_token: int):
        self.tree, self.per_token = tree, per_token
        self.logits: dict[tuple[int, ...], np.ndarray] = {}
        self.nbytes = 0

    def next_logits(self, continuations: list[tuple[int, ...]]) -> np.ndarray:
        missing = [c for c in dict.fromkeys(continuations) if c not in self.logits]
        if missing:
            for c, row in zip(missing, self.tree.next_logits(missing)):
                self.logits[c] = row
                self.nbytes += row.nbytes + self.per_token * len(c)  # the row's logits, its keys and values
        return np.stack([self.logits[c] for c in continuations])


class Root:
    def __init__(self, engine, logits: np.ndarray, state):
        self.logits, self.state = logits, state
        self.per_token = engine.nbytes(state) // max(1, engine.length(state))
        self._engine, self._tree = engine, None

    @property
    def tree(self) -> Remembered:
        if self._tree is None:
            self._tree = Remembered(self._engine.tree(self.state), self.per_token)
        return self._tree

    @property
    def nbytes(self) -> int:
        return self._engine.nbytes(self.state) + self.logits.nbytes + (self._tree.nbytes if self._tree else 0)


class Prefixes:
    def __init__(self, budget: int = BUDGET):
        self.budget = budget
        self.roots: OrderedDict[tuple, Root] = OrderedDict()
        self._lock = threading.Lock()  # the REPL's ghost text searches in a thread of its own

    def root(self, engine, ids: list[int], after=None, after_key: Hashable = None) -> Root:
        """The read of `ids` after `after` (known to this cache as `after_key`), remembered: the same tokens again
        are not read."""
        key = (engine.identity, after_key, tuple(ids))
        with self._lock:
            root = self.roots.get(key)
        if root is None:
            logits, state = engine.read(ids, after)
            root = Root(engine, logits, state)
        with self._lock:
            root = self.roots.setdefault(key, root)
            self.roots.move_to_end(key)
            self._trim()
        return root

    def _trim(self) -> None:
        total = sum(root.nbytes for root in self.roots.values())
        while len(self.roots) > 1 and total > self.budget:
            _, dropped = self.roots.popitem(last=False)
            total -= dropped.nbytes
        if total > self.budget:  # one root whose rows outgrew the budget: they go, the read stays
            next(iter(self.roots.values()))._tree = None
