"""The shared best-first search on a toy token tree: every node's next-token distribution is made up (seeded by
the node), so the best suggestions are known by enumerating every path."""

from __future__ import annotations

import itertools
import random

import pytest

from autocomplete.text.search import Row, Space, best_first
from autocomplete.text.suggestions import repeats

WORDS = (" red", " big", " cat", " dog", " runs")
END = ""  # the end of the text


def row(tokens: tuple[str, ...]) -> Row:
    draw = random.Random(repr(tokens))
    weights = {token: draw.random() ** 3 for token in (*WORDS, END)}  # cubed: peaked, as a model's odds are
    total = sum(weights.values())
    ranked = sorted(weights, key=lambda token: -weights[token])
    return Row(weights[END] / total, ranked, [weights[token] / total for token in ranked], False)


def toy(bound: int = 10_000, batch: int = 3, read: list | None = None, known=lambda tokens: None) -> Space:
    def rows(nodes):
        if read is not None:
            read.extend(nodes)
        return [row(tokens) for tokens in nodes]

    return Space(read=rows, shown="".join, spelled=lambda tokens: True, ends_text={END}, bound=bound, batch=batch,
                known=known)


def brute_force(prefix: str, n: int, words: int) -> list[tuple[str, float]]:
    """Every path of at most `words` words that says no word twice back to back, scored P(path) x P(end there)."""
    scored = []
    for length in range(1, words + 1):
        for path in itertools.product(WORDS, repeat=length):
            if repeats(prefix, "".join(path)):
                continue
            p = 1.0
            for i, token in enumerate(path):
                here = row(path[:i])
                p *= here.probs[here.tokens.index(token)]
            scored.append(("".join(path), p * row(path).end))
    return sorted(scored, key=lambda pair: -pair[1])[:n]


@pytest.mark.parametrize("n, words", [(1, 3), (5, 3), (8, 4), (5, 2)])
def test_the_search_finds_the_top_n_brute_force_finds(n, words):
    found = best_first(toy(), [((), 1.0, row(()))], "i like", "query", n, words)
    expected = brute_force("i like", n, words)
    assert found.exact
    assert [s.completion for s in found] == [text for text, _ in expected]
    assert [s.probability for s in found] == pytest.approx([p for _, p in expected], rel=1e-12)
    assert [s.tokens for s in found] == [[" " + word for word in text.split()] for text, _ in expected]


def test_the_search_reads_few_rows_and_stops_at_its_bound_saying_so():
    read: list = []
    whole = best_first(toy(read=read), [((), 1.0, row(()))], "i like", "query", 5, 4)
    assert whole.exact and END not in {token for tokens in read for token in tokens}  # the end is never followed
    assert len(read) < len(WORDS) ** 3  # best first: far fewer than the paths
    read.clear()
    cut = best_first(toy(bound=4, batch=2, read=read), [((), 1.0, row(()))], "i like", "query", 5, 4)
    assert not cut.exact and len(read) == 4


def test_rows_known_are_free_and_the_read_bound_counts_only_rows_read():
    read: list = []
    free = best_first(toy(read=read, known=row), [((), 1.0, row(()))], "i like", "query", 5, 3)
    assert read == [] and free.exact
    assert [(s.completion, s.probability) for s in free] == brute_force("i like", 5, 3)
    short = best_first(toy(read=read), [((), 1.0, row(()))], "i like", "query", 5, 3, reads=3)
    assert not short.exact and 1 <= len(short) < 5 and len(read) == 3  # one batch read, the bound met
    read.clear()
    empty = best_first(toy(read=read), [((), 1.0, row(()))], "i like", "query", 5, 3, reads=0)
    assert len(empty) >= 1 and len(read) == 3  # an empty list reads on: one batch, and then it had some
