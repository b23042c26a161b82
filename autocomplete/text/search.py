"""The best-first search for suggestions over a token tree, whoever reads the tree: the model in process
(autocomplete.text.suggest, token ids) or an OpenAI-compatible server's top alternatives (autocomplete.text.remote,
token texts). A caller gives a Space: how to read a batch of nodes into rows, how a node shows as text, its bounds.

A suggestion's score is P(its tokens) x P(it ends there) (Row.end). A continuation is never likelier than its
prefix, so once the n-th best suggestion found beats every prefix still waiting, no tokenization left can overtake
it (a suggestion's other tokenizations still waiting, each below that bar, are not added in). Each read takes a
batch of the likeliest waiting prefixes; one the tree already holds (Space.known) is expanded without a read.

Never listed: text without a letter or digit, bytes that are no character, a word said twice back to back
(autocomplete.text.suggestions.repeats: not followed either), tokens that aren't how the model writes their text
(Space.written: not followed either where no token added can make them so), and in the text style a token that
only adds punctuation or space to the word before (counted in that word's ending already). Never followed: the end
of the text, a second line, more than `words` words, more than Space.room tokens.

What the bounds cut counts as left out (`exact` False): children past a row's cut, prefixes past Space.bound
expansions, and prefixes past `reads` rows read (rows the tree already holds are free, so typing on, each list goes
deeper than the one before; past the bound every row held is still looked at, and only if the list is still empty
does it read on, depth first, until it has one: a list is never left empty for speed).
"""

from __future__ import annotations

import heapq
import itertools
import math
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
    # Whether the model writes a node's tokens so (autocomplete.text.heal.Canonical): whole=True, as they are;
    # whole=False, as they may yet be with more tokens. A suggestion is credited, and a node followed, only if so.
    written: Callable[[Node, bool], bool] = lambda node, whole: True


class Frontier:
    """The prefixes waiting to be read, likeliest first (ties: first pushed first), the probability they hold
    between them (`waiting`), and how many were taken to expand (`taken`). keep: whether a prefix is followed at
    all, asked only when it is taken (most prefixes pushed never are, and judging one can cost a tokenizer call);
    one that isn't is dropped then, as if never pushed (None: all are)."""

    def __init__(self, keep: Callable[[Node], bool] | None = None):
        self._heap: list[tuple[float, int, Node]] = []  # (-probability, tiebreak, tokens)
        self._tiebreak = itertools.count()
        self._in: set[int] = set()  # the tiebreaks still waiting (one taken out of turn stays in the heap, skipped)
        self._children: dict[Node, list[tuple[float, int, Node]]] = {}  # each prefix's, as pushed (best first)
        self.waiting = 0.0
        self.taken = 0
        self._keep = keep

    def __bool__(self) -> bool:
        return bool(self._clean())

    def push(self, node: Node, p: float) -> None:
        entry = (-p, next(self._tiebreak), node)
        self._put(entry)
        self._children.setdefault(node[:-1], []).append(entry)

    def _put(self, entry: tuple[float, int, Node]) -> None:
        heapq.heappush(self._heap, entry)
        self._in.add(entry[1])
        self.waiting -= entry[0]

    def _clean(self) -> list:
        heap = self._heap
        while heap and heap[0][1] not in self._in:
            heapq.heappop(heap)
        return heap

    def top(self) -> float:
        """The likeliest waiting prefix's probability (0 with none waiting), kept or not."""
        heap = self._clean()
        return -heap[0][0] if heap else 0.0

    def pop(self) -> tuple[float, int, Node]:
        """The likeliest waiting prefix's entry, out of the frontier (its probability still counted in `waiting`)."""
        entry = heapq.heappop(self._clean())
        self._in.discard(entry[1])
        return entry

    def kept(self, node: Node) -> bool:
        return self._keep is None or self._keep(node)

    def top_kept(self) -> float:
        """The likeliest waiting prefix's probability of those kept (0: none), the others dropped."""
        while self and not self.kept(self._heap[0][2]):
            self.waiting += self.pop()[0]
        return self.top()

    def take(self, n: int, under: list[Node] = ()) -> list[tuple[float, Node]]:
        """Up to n waiting prefixes taken, kept ones: the likeliest child of each of `under` (at most n) that has one
        waiting, then the likeliest waiting (the ones not kept on the way dropped)."""
        taken = []
        for parent in under:
            for entry in self._children.get(parent, ()):
                if entry[1] in self._in:
                    self._in.discard(entry[1])
                    self.waiting += entry[0]
                    if self.kept(entry[2]):
                        taken.append((-entry[0], entry[2]))
                        break
        while len(taken) < n and self:
            neg_p, _, node = self.pop()
            self.waiting += neg_p
            if self.kept(node):
                taken.append((-neg_p, node))
        self.taken += len(taken)
        return taken

    def put_back(self, entries: list[tuple[float, int, Node]]) -> None:
        """Entries popped and not taken, waiting again."""
        for entry in entries:
            self.waiting += entry[0]
            self._put(entry)


def explore(frontier: Frontier, read: Callable[[list[Node]], list], expand: Callable[[Node, float, object], None],
            bound: int, batch: int, bar: Callable[[], float] = lambda: -math.inf,
            done: Callable[[], bool] | None = None, known: Callable[[Node], object | None] = lambda node: None,
            reads: int | None = None, empty: Callable[[], bool] = lambda: False) -> float:
    """The best-first search under every search here (suggestions, whole-word healing; in process and over --api):
    takes the likeliest waiting prefixes, `batch` at a time, reads their rows at once (`read`) and hands each to
    `expand`, which pushes its children, until `done()` (asked between batches, when no probability is in flight;
    by default once nothing waiting beats `bar()`), nothing waits or `bound` prefixes were taken. A prefix at or
    below bar() is not taken. A row `known` holds is expanded at once, for nothing; past `reads` rows read (counted
    a batch at a time: a batch begun is read whole) the rest are put aside. Returns the likeliest prefix put aside
    unread (0: none).
    If `empty()` then (nothing to list after every row held was looked at), it reads on (a list is never left
    empty for speed), depth first: what an empty list lacks is any prefix that ends, and best first spreads its
    reads over siblings, a level a read. So it follows the likeliest child of each prefix it read last, half a
    batch of them a read (their rows cost less than a whole batch's), the likeliest waiting filling the places of
    those with none, until something is found."""
    done = done or (lambda: frontier.top() <= bar())
    deferred: list[tuple[float, int, Node]] = []
    read_rows = 0
    while frontier and frontier.taken < bound and not done():
        pending: list[tuple[float, Node]] = []
        while frontier and len(pending) < batch and frontier.top() > bar() and frontier.taken < bound:
            entry = frontier.pop()
            neg_p, _, node = entry
            row = known(node)
            if row is None and reads is not None and read_rows >= reads:
                deferred.append(entry)  # (judged only if it comes to matter)
                continue
            frontier.waiting += neg_p
            if not frontier.kept(node):
                continue
            frontier.taken += 1
            if row is not None:
                expand(node, -neg_p, row)
            else:
                pending.append((-neg_p, node))
        if pending:
            read_rows += len(pending)
            for (p, node), row in zip(pending, read([node for _, node in pending])):
                expand(node, p, row)
    if not deferred or not empty():  # (deferred: likeliest first)
        return next((-neg_p for neg_p, _, node in deferred if frontier.kept(node)), 0.0)
    frontier.put_back(deferred)
    last: list[Node] = []
    while empty() and frontier.taken < bound and (dive := frontier.take(max(1, batch // 2), last)):
        last = [node for _, node in dive]
        for (p, node), row in zip(dive, read(last)):
            expand(node, p, row)
    return 0.0  # (what was put aside waits again: the frontier's)


def best_first(tree: Space, roots: list[tuple[Node, float, Row]], prefix: str, style: str, n: int, words: int,
               reads: int | None = None) -> Found:
    """The n likeliest suggestions under the roots' rows (a node each, its probability: 1 for the one root, a
    casing's share where a query is read in several, autocomplete.text.casing); `exact` False if a bound cut one that
    could have made it. reads: rows the search may read (known ones not counted); None: as many as it takes."""
    found = Tally()
    left_out = 0.0  # the most a child past a row's cut could have had

    def bar() -> float:
        return found.bar(n)

    def counted(tokens: Node, text: str) -> bool:
        """In the text style, whether the last token only added punctuation or space to the one before ("Paris" then
        "."): that starts a new word, so the prefix's score already holds it (a second count listed Paris at 199.8%)."""
        return style != "query" and bool(tokens) and normalise(text) == normalise(tree.shown(tokens[:-1]))

    def expand(tokens: Node, p: float, row: Row) -> None:
        """A prefix followed (judged so when taken; a root, below): credited, its children waiting."""
        credit(tokens, p, row)
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
            if tree.room is None or len(child) <= tree.room:
                frontier.push(child, p * q)  # (judged by `followed` if taken)

    def credit(tokens: Node, p: float, row: Row) -> None:
        """The suggestion a prefix is, if it is one: its probability and then the end's."""
        text = tree.shown(tokens)
        # U+FFFD is bytes that are no character: not a query anyone types. At the end it may be a character's
        # first bytes (followed, not suggested); before the end it never goes away (not followed either).
        if tree.spelled(tokens) and any(ch.isalnum() for ch in text) and "\ufffd" not in text \
                and not repeats(prefix, text) and not counted(tokens, text) and tree.written(tokens, True):
            score = p * row.end
            if score > 0:
                found.add(text, score, list(tokens))

    def followed(tokens: Node) -> bool:
        """Whether a prefix is read at all: one line, `words` words at most, and nothing that no token added makes
        listable (bytes that are no character before its end, a word said twice, tokens the model doesn't write so;
        a word it finishes is written so, else never read)."""
        text = tree.shown(tokens)
        return "\n" not in text and len(text.split()) <= words and "\ufffd" not in text.rstrip("\ufffd") \
            and not repeats(prefix, text, growing=True) and tree.written(tokens, False)

    frontier = Frontier(followed)
    for node, p, row in roots:
        (expand if followed(node) else credit)(node, p, row)
    unread = explore(frontier, tree.read, expand, tree.bound, tree.batch, bar=bar, known=tree.known, reads=reads,
                     empty=lambda: not found.found)
    result = found.best(n)
    result.exact = max(left_out, unread, frontier.top_kept()) <= bar()
    return result
