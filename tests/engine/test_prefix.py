"""Reads remembered by their tokens (autocomplete.engine.prefix): what is read again is not computed again, what
is computed from a remembered read equals a read from scratch, and the memory stays within its budget."""

from __future__ import annotations

import numpy as np
import pytest

from autocomplete.engine.prefix import Prefixes
from autocomplete.settings import Params
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

            def __getattr__(self, name):  # what it holds (holds, drop, nbytes)
                return getattr(tree, name)

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
    settings = Params(temperature=1.0, top_k=3, top_p=1.0, style="text")
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


def test_a_root_grown_from_an_earlier_tree_reads_nothing(tiny):
    """"how" searched reads the row "how" + " to"; "how to" is then found as that row (grown=True): no read, the
    same logits as reading it at once (to rounding), its rows those under the row, its state read when asked."""
    engine, prefixes = Counting(tiny.engine), Prefixes()
    ids = tiny.encode("san francisco")
    first = prefixes.root(engine, ids[:1])
    first.tree.next_logits([tuple(ids[1:2]), tuple(ids[1:])])
    reads = engine.read_tokens
    grown = prefixes.root(engine, ids, grown=True)
    assert engine.read_tokens == reads  # nothing read
    fresh, state = tiny.engine.read(ids)
    np.testing.assert_allclose(grown.logits, fresh, rtol=1e-4, atol=1e-4)
    token = int(fresh.argmax())
    np.testing.assert_array_equal(grown.tree.next_logits([(token,)])[0],
                                  first.tree.next_logits([tuple(ids[1:]) + (token,)])[0])  # the same row
    assert tiny.engine.length(grown.state) == len(ids) and engine.read_tokens == reads + len(ids)
    assert prefixes.root(engine, ids) is not grown  # without grown: a read of its own


def test_a_root_too_big_for_the_budget_drops_its_oldest_rows_and_reads_them_again(tiny):
    engine, prefixes = Counting(tiny.engine), Prefixes()
    root = prefixes.root(engine, tiny.encode("san"))
    rows = [(t,) for t in range(8)]
    before = root.tree.next_logits(rows)
    child = rows[0] + (5,)
    root.tree.next_logits([child])
    prefixes.budget = root.nbytes - 4 * root.tree.nbytes // 10  # about 40% of the rows must go
    prefixes._trim()
    assert root.nbytes <= prefixes.budget and rows[0] not in root.tree.logits  # the least recent went first
    assert child in root.tree.logits  # used after them
    engine.rows = 0
    again = root.tree.next_logits([rows[0], rows[0] + (7,)])  # a dropped row, and a child of it
    assert engine.rows == 2  # each once: the parent first (its child reads after its keys and values)
    np.testing.assert_allclose(again[0], before[0], rtol=1e-5, atol=1e-5)


def test_a_memo_is_computed_once_per_key_and_dropped_with_its_row(tiny):
    engine, prefixes = Counting(tiny.engine), Prefixes()
    root = prefixes.root(engine, tiny.encode("san"))
    calls = []

    def compute(logits, key):
        calls.append(key)
        return float(logits.max()) + key

    rows = [(1,), (2,)]
    first = root.tree.memo(rows, [0, 0], compute)
    assert root.tree.memo(rows, [0, 1], compute)[0] == first[0] and calls == [0, 0, 1]
    assert engine.rows == 2  # the second call read nothing
    root.tree.drop_oldest()
    assert rows[0] not in root.tree.memos and len(root.tree.memo([rows[0]], [0], compute)) == 1 and calls[-1] == 0
