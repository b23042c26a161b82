"""Whole-word healing: the word being typed is completed to the likeliest whole word, not by the likeliest first token.

Typed "new yo", the likeliest token that fits is ` you` (75%), which greedy then has to carry on (`tube`); ` York`
has 10%, and "york" in lower case is ` yo` + `rk`, which token healing alone never tries. A word's probability is
the sum over every tokenization t that spells it of P(t) x P(a word boundary after t), at the model's own
temperature (T = 1): the token-to-character view of Vieira et al. (ICML 2025), the "retrace" of Kim (EMNLP 2019)
for subword query completion. In the query style words are told apart ignoring case, as the letters are matched.

The best-first search of autocomplete.text.search (explore), over the tokens that spell the typed letters, then
over tokens that carry the word on, until one that starts a new word (a space, punctuation, a line break, the end of
the text). A waiting prefix can add at most its own probability to any word, so once the best word leads the second
by more than all the probability still waiting or left out, nothing can overtake it (`exact`). Bounds, and what
they cut counts as left out: WORD_CHILDREN tokens a prefix, WORD_TOKENS tokens a word (fewer where the context
window has less room), WORD_EXPANSIONS prefixes read (BATCH rows a forward). Over --api (autocomplete.text.remote)
the same search runs on the server's top alternatives; what they don't list is left out.

Words (the bookkeeping) is plain Python: the --api path imports no numpy for it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from autocomplete.text.search import Frontier, explore

if TYPE_CHECKING:
    import numpy as np

    from autocomplete.engine.models import LoadedModel
    from autocomplete.text.prompt import Prompt

WORD_CHILDREN = 16
WORD_TOKENS = 8
WORD_EXPANSIONS = 48
BATCH = 4
SHOWN = 8  # candidate words kept for --explain


@dataclass
class Word:
    tokens: list  # the chosen word's likeliest tokenization (token ids; over --api, texts), typed letters first
    text: str  # the word as spelled by those tokens (its leading space included)
    candidates: list[tuple[str, float]]  # the likeliest words found, best first, each summed over its tokenizations
    exact: bool  # False when a bound cut the search while the choice could still have changed
    expansions: int  # prefixes read


class Words:
    """A whole-word search, whatever reads the model: prefixes waiting (a tuple of tokens each), words found
    (keyed as `key` says), the probability still waiting and left out."""

    def __init__(self, key: Callable[[tuple], Hashable], text: Callable[[tuple], str], room: int | None = None,
                 written: Callable[[tuple], bool] = lambda tokens: True):
        self.key, self.text, self.room = key, text, room  # room: the most tokens a word may have (the context's)
        self.written = written  # whether the model writes a word's tokens so (autocomplete.text.heal.Canonical)
        self.found: dict[Hashable, float] = {}
        self.best: dict[Hashable, tuple[tuple[bool, float], tuple]] = {}  # each word's likeliest tokenization
        self.frontier = Frontier()
        self.left_out = 0.0

    def ends(self, tokens: tuple, p: float, clean: bool = True) -> None:
        """The word `tokens` spell ends after them with probability p (theirs times a boundary's); not clean: it
        ended inside their last token, which then shows the word only where no clean tokenization was found. Tokens
        the model doesn't write the word with credit it nothing."""
        if not self.written(tokens):
            return
        key = self.key(tokens)
        self.found[key] = self.found.get(key, 0.0) + p
        rank = (clean, p)
        if key not in self.best or rank > self.best[key][0]:
            self.best[key] = (rank, tokens)

    def follow(self, tokens: tuple, p: float, children: list[tuple[object, float]], mass: float, past: int = 0,
               ended: Callable[[tuple], bool | None] = lambda tokens: False) -> None:
        """The likeliest children (token, its probability after `tokens`) wait to be read, or, where ended(child)
        (a token like `ket.` ends the word inside it), count as the end of their word, or where it is None are
        left out; so is the rest of `mass` (all the children could have had), and everything once `past` (tokens
        after the typed letters were spelled) reaches WORD_TOKENS, or the tokens fill the room."""
        if past >= WORD_TOKENS or self.room is not None and len(tokens) >= self.room:
            self.left_out += p * mass
            return
        kept = 0.0
        for token, q in sorted(children, key=lambda c: -c[1])[:WORD_CHILDREN]:
            child = tokens + (token,)
            end = ended(child)
            if end is None:
                self.left_out += p * q
            elif end:
                self.ends(child, p * q, clean=False)
            else:
                self.frontier.push(child, p * q)
            kept += p * q
        self.left_out += max(0.0, p * mass - kept)

    def settled(self) -> bool:
        ranked = sorted(self.found.values(), reverse=True)
        second = ranked[1] if len(ranked) > 1 else 0.0
        return bool(ranked) and ranked[0] - second > self.frontier.waiting + self.left_out

    def run(self, read: Callable[[list[tuple]], list], expand: Callable[[tuple, float, object], None],
            batch: int) -> None:
        """Searched to its end: the rows of `batch` waiting prefixes read at once, each handed to expand."""
        explore(self.frontier, read, expand, WORD_EXPANSIONS, batch, done=self.settled)

    @property
    def expansions(self) -> int:
        return self.frontier.taken

    def chosen(self, temperature: float, pick: Callable[[list[float]], int]) -> Word | None:
        """The likeliest word (temperature 0), or one drawn by pick(weights) with weights P(word)^(1/T)."""
        if not self.found:
            return None
        ranked = sorted(self.found.items(), key=lambda kv: -kv[1])
        key = ranked[0][0]
        if temperature > 0 and len(ranked) > 1:
            import math

            top = math.log(ranked[0][1])
            key = ranked[pick([math.exp((math.log(p) - top) / temperature) for _, p in ranked])][0]
        tokens = self.best[key][1]
        exact = self.settled() or not self.frontier and self.left_out == 0
        candidates = [(self.text(self.best[k][1]), p) for k, p in ranked[:SHOWN]]
        return Word(list(tokens), self.text(tokens), candidates, exact, self.expansions)


def choose(lm: LoadedModel, read: Prompt, temperature: float = 0.0, rng: np.random.Generator | None = None,
           check: Callable[[], None] = lambda: None) -> Word | None:
    """The whole word the typed letters become, or None when there is nothing to heal or no word was found within
    the bounds. temperature 0 takes the likeliest word; above 0 a word is drawn with weights P(word)^(1/T). It
    grows from the prompt's remembered read (Prompt.root): the next keystroke's search reads none of its rows."""
    search = words(lm, read, check)
    return None if search is None else search.chosen(temperature, _picker(rng))


def _picker(rng):
    import numpy as np  # loads numpy

    rng = rng if rng is not None else np.random.default_rng()
    return lambda weights: int(rng.choice(len(weights), p=np.array(weights) / sum(weights)))


def choose_in_casings(lm: LoadedModel, reads: list[Prompt], shares: list[float], temperature: float = 0.0,
                      rng: np.random.Generator | None = None, check: Callable[[], None] = lambda: None
                      ) -> tuple[int, Word] | None:
    """The word chosen over the casings a lower-case query is read in (autocomplete.text.casing): each word's
    probability the casings' mixture, P(w) = sum of share x P(w | casing) (each search's words, normalised over
    what it found); and the casing it came from likeliest, whose read the completion goes on from. None where no
    casing found a word."""
    import math

    searches = [words(lm, read, check) for read in reads]
    mixed: dict = {}
    sources: dict = {}  # a word's likeliest casing: (its share there, the casing, the word as that search keys it)
    for c, (share, search) in enumerate(zip(shares, searches)):
        total = sum(search.found.values()) if search else 0.0
        for key, p in (search.found.items() if total else ()):
            p /= total  # P(word | the letters typed in this case): the casing's own odds of them are its share
            word = key.lower()  # one word in every case (a lower-case query's completion is shown so)
            mixed[word] = mixed.get(word, 0.0) + share * p
            if word not in sources or share * p > sources[word][0]:
                sources[word] = (share * p, c, key)
    if not mixed:
        return None
    ranked = sorted(mixed.items(), key=lambda kv: -kv[1])
    key = ranked[0][0]
    if temperature > 0 and len(ranked) > 1:
        top = math.log(ranked[0][1])
        key = ranked[_picker(rng)([math.exp((math.log(p) - top) / temperature) for _, p in ranked])][0]

    def tokens_of(word) -> tuple[int, list[int]]:
        _, c, key = sources[word]
        return c, list(searches[c].best[key][1])

    c, tokens = tokens_of(key)
    exact = all(s is None or s.settled() or not s.frontier and s.left_out == 0 for s in searches)
    candidates = [(searches[tokens_of(k)[0]].text(tokens_of(k)[1]), p) for k, p in ranked[:SHOWN]]
    return c, Word(tokens, searches[c].text(tokens), candidates, exact, sum(s.expansions for s in searches if s))


def words(lm: LoadedModel, read: Prompt, check: Callable[[], None] = lambda: None) -> Words | None:
    """The whole-word search under one read of the prompt, run to its end (None: nothing to heal)."""
    import numpy as np

    from autocomplete.text.sample import softmax  # loads numpy
    from autocomplete.text.masks import canonical, carries_on, word_starts  # loads numpy

    healing = read.healing
    if healing is None:
        return None
    start = read.root(lm)
    root = softmax(np.asarray(start.logits, dtype=np.float32)[None])[0]
    ends, goes_on = word_starts(lm, root.shape[-1]), carries_on(lm, root.shape[-1])
    vocab, fold = read.vocab, healing.fold
    typed = healing.text

    def spelled_text(tokens: tuple) -> str:
        return vocab.bytes_of(list(tokens)).decode("utf-8", errors="replace")

    def ended(tokens: tuple) -> bool | None:
        """Whether the word ends inside the last token; None for a character begun by the token before (an emoji
        split across tokens): over --api such pieces are never listed, so here they count as left out too."""
        if healing.remaining(list(tokens)) or boundary(spelled_text(tokens), typed) is None:
            return False
        return None if spelled_text(tokens[:-1]).endswith("\ufffd") else True

    def key(tokens: tuple) -> str:
        text = spelled_text(tokens)
        word = text[: boundary(text, typed)]
        return word.lower() if fold else word

    # a row past the context window can't be read; a word counts through its canonical tokens alone
    search = Words(key=key, text=spelled_text, room=read.max_new, written=canonical(lm))

    def expand(tokens: tuple, p: float, probs: np.ndarray) -> None:
        every = healing.every(list(tokens))
        past = 0
        if every is None:  # spelled: the word may end here, or go on
            past = len(tokens) - next(i for i in range(len(tokens) + 1) if not healing.remaining(list(tokens[:i])))
            if not spelled_text(tokens).endswith("\ufffd"):  # (not inside a character)
                search.ends(tokens, p * float(probs[ends].sum()))
            candidates = np.flatnonzero(goes_on & (probs > 0))
        else:
            candidates = every[probs[every] > 0]
        k = min(WORD_CHILDREN, candidates.size)
        top = candidates[np.argpartition(probs[candidates], -k)[-k:]] if k < candidates.size else candidates
        search.follow(tokens, p, list(zip(top.tolist(), probs[top].tolist())), float(probs[candidates].sum()), past,
                      ended)

    def read_rows(nodes: list[tuple]) -> np.ndarray:
        check()
        return softmax(np.asarray(start.tree.next_logits(nodes), dtype=np.float32))

    expand((), 1.0, root)
    search.run(read_rows, expand, BATCH)
    return search


def boundary(text: str, typed: str) -> int | None:
    """Where the word in `text` (the typed letters spelled, then more) ends inside it: the first character after
    the typed letters that is no letter or digit (a space, punctuation, an emoji), or None if none is there yet
    (bytes of an unfinished character at the end are not yet a character)."""
    body = text.rstrip("\ufffd")
    return next((i for i in range(len(typed), len(body)) if not body[i].isalnum()), None)


@dataclass
class Start:
    """Where generation starts once the typed word is healed: read `ids` after `after`, the tokens allowed at each
    step given by `allowed` (token healing alone, when no whole word was found), `word` written first."""

    ids: list[int]
    after: object
    word: Word | None
    allowed: Callable | None

    @property
    def given(self) -> list[int]:
        """The tokens already chosen: the whole word, which the completion writes before what generation adds."""
        return list(self.word.tokens) if self.word else []


def start(lm: LoadedModel, read: Prompt, temperature: float = 0.0, rng: np.random.Generator | None = None,
          check: Callable[[], None] = lambda: None) -> Start:
    """The prompt read once: the word search grows from it, and generation reads the chosen word after it."""
    if read.healing is None:
        return Start(read.ids, read.after(), None, None)
    word = choose(lm, read, temperature, rng, check)
    if word is None:
        return Start(read.ids, read.after(), None, read.allowed)
    return Start(word.tokens, read.root(lm).state, word, None)


def start_in_casings(lm: LoadedModel, reads: list[Prompt], shares: list[float], temperature: float = 0.0,
                     rng: np.random.Generator | None = None, check: Callable[[], None] = lambda: None
                     ) -> tuple[Prompt, Start]:
    """start() for a lower-case query read in its casings (autocomplete.text.casing): the read to go on from (the
    casing the chosen word came from likeliest; with no word to choose, the likeliest casing) and where."""
    likeliest = max(range(len(reads)), key=shares.__getitem__)
    chosen = choose_in_casings(lm, reads, shares, temperature, rng, check) if reads[0].healing else None
    if chosen is None:
        return reads[likeliest], start(lm, reads[likeliest], temperature, rng, check)
    c, word = chosen
    return reads[c], Start(word.tokens, reads[c].root(lm).state, word, None)
