"""Reads remembered by the tokens read (vLLM's automatic prefix caching, for one process): a request whose prompt
(before the word being typed) was read before is not read again, and a suggestion search that grows from where an
earlier one did (the next keystroke, which only added letters to the word) reads none of the rows that one read.

A Root is one read: the logits after it, its state (never changed: read() leaves the state it reads after as it
is, and a Tree only reads it) and the Tree grown from it, every row's logits kept. Roots are kept by (what they
were read after, their tokens).

A search may also start inside an earlier root's tree (`grown`): once "how" was searched, the rows "how", "how to",
"how to make" are read, and "how " or "how to " is a row of that tree, not a new read (typing on past a word
read none of the rows its search reads again). Only the suggestion search asks for that: a row rounds a little
differently than the same tokens read at once, and a greedy completion, which after a frame the tiny test model
never saw changed with it, must not hang on what was asked before (the warm server's answers); a suggestion
list's probabilities are the same to five digits, its order the same but for ties.

Memory: the least recently used roots go once all of them hold more than BUDGET bytes (keys and values, logits,
what memo() kept: each value's `nbytes` if it says, else sys.getsizeof); within the one left, its least recently
used rows (their logits, and their keys and values where the engine's tree can drop them alone; a row dropped is
read again if asked for).
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np

BUDGET = 256 * 2**20


def _size(value) -> int:
    return getattr(value, "nbytes", None) or sys.getsizeof(value)


class Remembered:
    """A Tree whose rows' logits are kept: a row asked for again is not read again. memo() keeps what the text layer
    works out from a row (a search's digest of it) beside it, dropped with it."""

    def __init__(self, tree):
        self.tree = tree
        self.logits: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()
        self.memos: dict[tuple[int, ...], dict] = {}
        self.kept = 0  # bytes of logits and memos

    @property
    def nbytes(self) -> int:
        return self.kept + self.tree.nbytes

    def next_logits(self, continuations: list[tuple[int, ...]]) -> np.ndarray:
        return np.stack(self._rows(continuations))

    def _rows(self, continuations: list[tuple[int, ...]]) -> list[np.ndarray]:
        missing = [c for c in dict.fromkeys(continuations) if c not in self.logits]
        if missing:  # (a row whose parent's keys and values the tree doesn't hold: the tree reads that first)
            for c, row in zip(missing, self.tree.next_logits(missing)):
                self.logits[c] = row
                self.kept += row.nbytes
        for c in continuations:
            self.logits.move_to_end(c)
        return [self.logits[c] for c in continuations]

    def keeps(self, continuation: tuple[int, ...]) -> bool:
        """Whether the row is kept (asking for it reads nothing)."""
        return continuation in self.logits

    def memo(self, continuations: list[tuple[int, ...]], keys: list[Hashable],
             compute: Callable[[np.ndarray, Hashable], object]) -> list:
        """compute(a row's logits, its key) for each row, once per key while the row is kept (the rows not yet
        read, read in one batch)."""
        todo = [(c, k) for c, k in dict.fromkeys(zip(continuations, keys)) if k not in self.memos.get(c, ())]
        if todo:
            for (c, k), row in zip(todo, self._rows([c for c, _ in todo])):  # (no copy into one array)
                value = self.memos.setdefault(c, {})[k] = compute(row, k)
                self.kept += _size(value)
        for c in continuations:
            self.logits.move_to_end(c)
        return [self.memos[c][k] for c, k in zip(continuations, keys)]

    def drop_oldest(self) -> None:
        c, row = self.logits.popitem(last=False)
        self.kept -= sum(_size(value) for value in self.memos.pop(c, {}).values()) + row.nbytes
        self.tree.drop(c)


class Within:
    """The rows of a Tree under one of its rows: `path` + continuation."""

    def __init__(self, tree: Remembered, path: tuple[int, ...]):
        self.tree, self.path = tree, path

    def next_logits(self, continuations: list[tuple[int, ...]]) -> np.ndarray:
        return self.tree.next_logits([self.path + c for c in continuations])

    def keeps(self, continuation: tuple[int, ...]) -> bool:
        return self.tree.keeps(self.path + continuation)

    def memo(self, continuations: list[tuple[int, ...]], keys: list[Hashable],
             compute: Callable[[np.ndarray, Hashable], object]) -> list:
        return self.tree.memo([self.path + c for c in continuations], keys, compute)


class Root:
    def __init__(self, engine, logits: np.ndarray, state):
        self.logits, self.state = logits, state
        self._engine, self._tree, self._memos = engine, None, {}

    def holds(self, continuation: tuple[int, ...]) -> bool:
        """Whether its tree has read this row (never reads one)."""
        return self._tree is not None and self._tree.keeps(continuation)

    @property
    def tree(self) -> Remembered:
        if self._tree is None:
            self._tree = Remembered(self._engine.tree(self.state))
        return self._tree

    def memo(self, key: Hashable, compute: Callable[[np.ndarray, Hashable], object]):
        """compute(the logits after the read, key), once per key."""
        if key not in self._memos:
            self._memos[key] = compute(self.logits, key)
        return self._memos[key]

    @property
    def holds_rows(self) -> bool:
        return self._tree is not None and bool(self._tree.logits)

    @property
    def nbytes(self) -> int:
        return self._engine.nbytes(self.state) + self.logits.nbytes + sum(map(_size, self._memos.values())) \
            + (self._tree.nbytes if self._tree else 0)


class Grown:
    """A root found as a row of an earlier root's tree: its logits that row's, its tree the rows under it. Its
    state, which only a completion needs, is read when asked for."""

    def __init__(self, under: Root, path: tuple[int, ...], read: Callable[[], object]):
        self.logits = under.tree.next_logits([path])[0]
        self.tree = Within(under.tree, path)
        self._read, self._state = read, None

    def memo(self, key: Hashable, compute: Callable[[np.ndarray, Hashable], object]):
        return self.tree.memo([()], [key], compute)[0]

    @property
    def state(self):
        if self._state is None:
            self._state = self._read()
        return self._state


class Prefixes:
    def __init__(self, budget: int = BUDGET):
        self.budget = budget
        self.roots: OrderedDict[tuple, Root] = OrderedDict()
        self._lock = threading.RLock()  # the REPL's ghost text searches in a thread of its own

    def root(self, engine, ids: list[int], after=None, after_key: Hashable = None, grown: bool = False):
        """The read of `ids` after `after` (known to this cache as `after_key`), remembered: the same tokens again
        are not read. grown: a row of an earlier root's tree that holds these tokens will do (see the module)."""
        key = (engine.identity, after_key, tuple(ids))
        with self._lock:
            root = self.roots.get(key)
            if root is None and grown:
                under = self._under(key)
                if under is not None:
                    self.roots.move_to_end(under[0])
                    found = Grown(self.roots[under[0]], under[1], lambda: engine.read(ids, after)[1])
                    self._trim()
                    return found
        if root is None:
            logits, state = engine.read(ids, after)
            root = Root(engine, logits, state)
        with self._lock:
            root = self.roots.setdefault(key, root)
            self.roots.move_to_end(key)
            self._trim()
        return root

    def _under(self, key: tuple) -> tuple[tuple, tuple[int, ...]] | None:
        """The remembered root whose tree holds `key`'s tokens as a row read, the longest: (its key, the row)."""
        identity, after_key, ids = key
        best = None
        for (i, a, start), root in self.roots.items():
            if (i, a) == (identity, after_key) and len(start) < len(ids) and ids[:len(start)] == start \
                    and root.holds(ids[len(start):]) \
                    and (best is None or len(start) > len(best[0][2])):
                best = ((i, a, start), ids[len(start):])
        return best

    def _trim(self) -> None:
        total = sum(root.nbytes for root in self.roots.values())
        while len(self.roots) > 1 and total > self.budget:
            _, dropped = self.roots.popitem(last=False)
            total -= dropped.nbytes
        left = next(iter(self.roots.values()), None)  # the one root left, whose rows outgrew the budget
        while total > self.budget and left is not None and left.holds_rows:
            before = left.tree.nbytes
            left.tree.drop_oldest()  # its least recent rows go
            total -= before - left.tree.nbytes
