"""The shared best-first search on a toy token tree: every node's next-token distribution is made up (seeded by
the node), so the best suggestions are known by enumerating every path."""

from __future__ import annotations

import itertools
import random

import pytest

from autocomplete.text.search import Frontier, Row, Space, best_first, explore
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
    assert len(empty) >= 1 and len(read) == 1  # an empty list reads on, half a batch a read: one, then it had some


# --- explore: the loop under both searches (this module's and autocomplete.text.word's) ---------------------------


def waiting(*pairs) -> Frontier:
    frontier = Frontier()
    for node, p in pairs:
        frontier.push(node, p)
    return frontier


def test_explore_takes_the_likeliest_first_a_batch_at_a_time_and_never_past_its_bound():
    frontier = waiting((("a",), 0.1), (("b",), 0.4), (("c",), 0.2), (("d",), 0.2), (("e",), 0.05))
    batches: list = []
    explore(frontier, lambda nodes: batches.append(nodes) or [None] * len(nodes), lambda node, p, row: None,
            bound=4, batch=3)
    assert batches == [[("b",), ("c",), ("d",)], [("a",)]]  # ties: first pushed first; the bound exact
    assert frontier.taken == 4 and frontier.top() == 0.05 and frontier.waiting == pytest.approx(0.05)


def test_explore_asks_whether_it_is_done_only_between_batches_and_expands_what_it_read():
    frontier = waiting((("a",), 0.5), (("b",), 0.3), (("c",), 0.2), (("d",), 0.1))
    seen: list = []

    def expand(node, p, row):
        seen.append((node, p, row))
        if len(node) < 2:
            frontier.push(node + ("x",), p * 0.5)  # a child, waiting

    explore(frontier, lambda nodes: [f"row of {''.join(node)}" for node in nodes], expand, bound=100, batch=3,
            done=lambda: bool(seen), known=lambda node: "known" if node == ("a",) else None)
    # done once anything was expanded (a, known: at once), yet the batch begun (its child first) was read whole
    assert seen == [(("a",), 0.5, "known"), (("b",), 0.3, "row of b"), (("a", "x"), 0.25, "row of ax"),
                    (("c",), 0.2, "row of c")]
    assert frontier.taken == 4 and frontier.waiting == pytest.approx(0.1 + 0.15 + 0.1)  # d, b's and c's children


def test_explore_puts_aside_past_its_reads_and_reads_on_only_for_an_empty_list():
    for empty, read_on in ((False, False), (True, True)):
        frontier = waiting((("a",), 0.5), (("b",), 0.3), (("c",), 0.2))
        batches: list = []
        unread = explore(frontier, lambda nodes: batches.append(nodes) or [None] * len(nodes),
                         lambda node, p, row: None, bound=100, batch=2, reads=2, empty=lambda: empty)
        assert batches[0] == [("a",), ("b",)]
        assert batches[1:] == ([[("c",)]] if read_on else []) and unread == (0.0 if read_on else 0.2)


def test_an_empty_list_reads_on_depth_first_the_likeliest_child_of_each_prefix_read_last():
    frontier = waiting((("a",), 0.5), (("b",), 0.4), (("z",), 0.3))
    batches: list = []

    def expand(node, p, row):
        if node[0] == "a":  # only a's prefixes have children: b and z end nowhere
            frontier.push(node + ("x",), p * 0.5)
            frontier.push(node + ("y",), p * 0.4)

    unread = explore(frontier, lambda nodes: batches.append(nodes) or [None] * len(nodes), expand, bound=100,
                     batch=4, reads=0, empty=lambda: not any(len(node) == 3 for batch in batches for node in batch))
    # two a read (half the batch); b has no child, so the likeliest waiting (z, then a's y) takes its place
    assert batches == [[("a",), ("b",)], [("a", "x"), ("z",)], [("a", "x", "x"), ("a", "y")]]
    assert unread == 0.0 and frontier.taken == 6
    # waiting: a.x's y, a.x.x's children, a.y's children
    assert frontier.top() == pytest.approx(0.1) and frontier.waiting == pytest.approx(0.1 + 0.0625 + 0.05 + 0.1 + 0.08)


def test_a_prefix_is_judged_only_when_taken_and_one_not_kept_is_dropped_as_if_never_pushed():
    judged: list = []

    def keep(node):
        judged.append(node)
        return node != ("b",)

    frontier = Frontier(keep)
    for node, p in ((("a",), 0.5), (("b",), 0.4), (("c",), 0.3), (("d",), 0.2)):
        frontier.push(node, p)
    batches: list = []
    explore(frontier, lambda nodes: batches.append(nodes) or [None] * len(nodes), lambda node, p, row: None,
            bound=2, batch=2)
    assert batches == [[("a",), ("c",)]] and judged == [("a",), ("b",), ("c",)]  # d never came up: never judged
    assert frontier.taken == 2 and frontier.waiting == pytest.approx(0.2)
