"""Reads remembered by their tokens (autocomplete.engine.prefix): what is read again is not computed again, what
is computed from a remembered read equals a read from scratch, and the memory stays within its budget."""

from __future__ import annotations

import numpy as np
import pytest

from autocomplete.engine.prefix import Prefixes
from autocomplete.settings import Settings
from autocomplete.text.suggest import suggest


class Counting:
    """An engine that counts the tokens it reads (rows of a tree count one each)."""

    def __init__(self, engine):
        self.engine, self.read_tokens, self.rows = engine, 0, 0
        self.identity = engine.identity

    def read(self, ids, after=None, room=0):
        self.read_tokens += len(ids)
        return self.engine.read(ids, after, room)

    def tree(self, state):
        tree, outer = self.engine.tree(state), self

        class Tree:
            def next_logits(self, continuations):
                outer.rows += len(continuations)
                return tree.next_logits(continuations)

        return Tree()

    def __getattr__(self, name):
        return getattr(self.engine, name)


def test_a_read_again_is_not_computed_again(tiny):
    engine, prefixes = Counting(tiny.engine), Prefixes()
    ids = tiny.encode("san francisco weather is")
    first = prefixes.root(engine, ids)
    assert prefixes.root(engine, ids) is first and engine.read_tokens == len(ids)
    np.testing.assert_array_equal(first.logits, tiny.engine.read(ids)[0])
    other = prefixes.root(engine, ids[:3])  # a start of it is a read of its own, from scratch
    assert other is not first and engine.read_tokens == len(ids) + 3
    assert tiny.engine.length(first.state) == len(ids)


def test_rows_asked_again_are_not_read_again(tiny):
    engine, prefixes = Counting(tiny.engine), Prefixes()
    root = prefixes.root(engine, tiny.encode("san"))
    token = int(root.logits.argmax())
    first = root.tree.next_logits([(token,)])
    again = root.tree.next_logits([(token,), (token, 5)])
    assert engine.rows == 2 and np.array_equal(first[0], again[0])


def test_the_next_keystroke_reuses_the_search(tiny, monkeypatch):
    """"san f" then "san fr": the prompt before the word is the same, so the second search grows from the first's
    rows; its list equals a search with nothing remembered."""
    settings = Settings(temperature=1.0, top_k=3, top_p=1.0, style="text")
    counting = Counting(tiny.engine)
    monkeypatch.setattr(tiny, "engine", counting)
    tiny.prefixes = None
    suggest(tiny, "san f", settings, n=3)
    rows = counting.rows
    again = suggest(tiny, "san fr", settings, n=3)
    reused = counting.rows - rows
    tiny.prefixes = None
    counting.rows = 0
    fresh = suggest(tiny, "san fr", settings, n=3)
    assert [s.completion for s in again] == [s.completion for s in fresh]
    assert [s.probability for s in again] == pytest.approx([s.probability for s in fresh], rel=1e-5)
    assert reused < counting.rows  # fewer rows read than from scratch


def test_the_budget_drops_the_least_recently_used(tiny):
    prefixes = Prefixes()
    roots = [prefixes.root(tiny.engine, tiny.encode(text)) for text in ("san", "seoul", "new")]
    prefixes.budget = roots[-1].nbytes + roots[-2].nbytes  # room for two
    prefixes.root(tiny.engine, tiny.encode("seoul"))  # used again: "san" is now the least recent
    prefixes._trim()
    kept = [key[2] for key in prefixes.roots]
    assert tuple(tiny.encode("san")) not in kept and len(kept) == 2
