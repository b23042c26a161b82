"""The best-first search for suggestions over a token tree, whoever reads the tree: the model in process
(autocomplete.text.suggest, token ids) or an OpenAI-compatible server's top alternatives (autocomplete.text.remote,
token texts). A caller gives a Space: how to read a batch of nodes into rows, how a node shows as text, its bounds.

A suggestion's score is P(its tokens) x P(it ends there) (Row.end). A continuation is never likelier than its
prefix, so once the n-th best suggestion found beats every prefix still waiting, no tokenization left can overtake
it (a suggestion's other tokenizations still waiting, each below that bar, are not added in). Each read takes a
batch of the likeliest waiting prefixes; one the tree already holds (Space.known) is expanded without a read.

Never listed: text without a letter or digit, bytes that are no character, a word said twice back to back
(autocomplete.text.suggestions.repeats: not followed either), tokens that aren't how the model writes their text
(Space.written: not followed past a finished word either), and in the text style a token that only adds punctuation
or space to the word before (counted in that word's ending already). Never followed: the end of the
text, a second line, more than `words` words, more than Space.room tokens.

What the bounds cut counts as left out (`exact` False): children past a row's cut, prefixes past Space.bound
expansions, and prefixes past `reads` rows read (rows the tree already holds are free, so typing on, each list goes
deeper than the one before; past the bound every row held is still looked at, and only if the list is still empty
does it read on: a list is never left empty for speed).
"""

from __future__ import annotations

import heapq
import itertools
import sys
from collections.abc import Callable, Container, Hashable
from dataclasses import dataclass
from typing import NamedTuple

from autocomplete.text.suggestions import Found, Tally, normalise, repeats

Node = tuple[Hashable, ...]  # the tokens after the prompt: ids in process, texts over the API


class Row(NamedTuple):
    """What the search takes from a node's next-token distribution: the chance the suggestion ends there, the
    likeliest next tokens (best first) and their probabilities, and whether more had any (cut)."""

    end: float
    tokens: list
    probs: list[float]
    cut: bool

    @property
    def nbytes(self) -> int:
        """What it holds, for the prefix cache's budget: itself, its lists, an int (28 bytes) and a float (24) each."""
        return sys.getsizeof(self) + sys.getsizeof(self.tokens) + sys.getsizeof(self.probs) + 52 * len(self.tokens)


@dataclass
class Space:
    """The space searched: how one caller's token tree is read and shown, and its bounds (the adapter)."""

    read: Callable[[list[Node]], list[Row]]  # a batch of nodes' rows, read at once (one forward, or requests)
    shown: Callable[[Node], str]  # what a node's tokens add to the prefix (the typed letters they spell again not)
    spelled: Callable[[Node], bool]  # whether its tokens have spelled the typed letters again
    ends_text: Container  # the child tokens that are the end of the text (counted in Row.end, never followed)
    bound: int  # nodes expanded at most, the root not counted
    batch: int  # nodes read at once
    room: int | None = None  # tokens a node may hold at most (the context window's room); None: no bound
    known: Callable[[Node], Row | None] = lambda node: None  # a row already read, free (an earlier search's)
    # Whether the model writes a node's tokens so (autocomplete.text.heal.Canonical): whole, or its finished words
    # only (whole=False: the last may still grow). A suggestion is credited, and a node followed, only if so.
    written: Callable[[Node, bool], bool] = lambda node, whole: True


def best_first(tree: Space, roots: list[tuple[Node, float, Row]], prefix: str, style: str, n: int, words: int,
               reads: int | None = None) -> Found:
    """The n likeliest suggestions under the roots' rows (a node each, its probability: 1 for the one root, a
    casing's share where a query is read in several, autocomplete.text.casing); `exact` False if a bound cut one that
    could have made it. reads: rows the search may read (known ones not counted); None: as many as it takes."""
    found = Tally()
    left_out = 0.0  # the most a child past a row's cut could have had
    frontier: list[tuple[float, int, Node]] = []  # (-probability, tiebreak, tokens)
    tiebreak = itertools.count()

    def bar() -> float:
        return found.bar(n)

    def counted(tokens: Node, text: str) -> bool:
        """In the text style, whether the last token only added punctuation or space to the one before ("Paris" then
        "."): that starts a new word, so the prefix's score already holds it (a second count listed Paris at 199.8%)."""
        return style != "query" and bool(tokens) and normalise(text) == normalise(tree.shown(tokens[:-1]))

    def expand(tokens: Node, p: float, row: Row) -> None:
        text = tree.shown(tokens)
        # U+FFFD is bytes that are no character: not a query anyone types. At the end it may be a character's
        # first bytes (followed, not suggested); before the end it never goes away (not followed either).
        if tree.spelled(tokens) and any(ch.isalnum() for ch in text) and "\ufffd" not in text \
                and not repeats(prefix, text) and not counted(tokens, text) and tree.written(tokens, True):
            score = p * row.end
            if score > 0:
                found.add(text, score, list(tokens))
        if "\ufffd" in text.rstrip("\ufffd") or repeats(prefix, text, growing=True) or not tree.written(tokens, False):
            return  # bytes that are no character, a word said twice, or one the model doesn't write so: all stay so
        nonlocal left_out
        threshold = bar()
        if row.cut:
            left_out = max(left_out, p * row.probs[-1])  # what a child past the cut could still have
        for q, token in zip(row.probs, row.tokens):
            if p * q <= threshold:
                break  # best first: the rest are smaller still
            if token in tree.ends_text:
                continue  # the end of the text is in row.end
            child = tokens + (token,)
            text = tree.shown(child)
            if "\n" not in text and len(text.split()) <= words and (tree.room is None or len(child) <= tree.room) \
                    and tree.written(child, False):  # (a word it finishes is written so: else never read)
                heapq.heappush(frontier, (-p * q, next(tiebreak), child))

    for node, p, row in roots:
        expand(node, p, row)
    expansions = read_rows = 0
    deferred: list[tuple[float, int, Node]] = []  # prefixes not read once `reads` rows were
    starving = False  # the bound met with nothing found among the rows held: an empty list reads on
    while True:
        while frontier and expansions < tree.bound:
            if -frontier[0][0] <= bar():
                break  # nothing waiting can beat the n-th best: the answer is exact
            # Best first: a row the tree holds is expanded at once, for nothing; the next `batch` rows not read yet
            # are read at once, full however many of the rows around them are known.
            pending: list[tuple[float, Node]] = []
            while frontier and len(pending) < tree.batch and -frontier[0][0] > bar() and expansions < tree.bound:
                entry = heapq.heappop(frontier)
                neg_p, _, tokens = entry
                if (row := tree.known(tokens)) is not None:
                    expand(tokens, -neg_p, row)
                    expansions += 1
                elif reads is None or read_rows < reads or starving and not found.found:
                    pending.append((-neg_p, tokens))
                else:
                    deferred.append(entry)
            if pending:
                for (p, tokens), row in zip(pending, tree.read([tokens for _, tokens in pending])):
                    expand(tokens, p, row)
                expansions += len(pending)
                read_rows += len(pending)
        if found.found or not deferred or starving or expansions >= tree.bound:
            break
        # Every row held looked at past the bound and still nothing to list: a list is never left empty for speed.
        for entry in deferred:
            heapq.heappush(frontier, entry)
        deferred.clear()
        starving = True
    unread = max((-neg_p for neg_p, _, _ in deferred), default=0.0)  # the likeliest prefix left unread
    result = found.best(n)
    result.exact = max(left_out, unread, -frontier[0][0] if frontier else 0.0) <= bar()
    return result
