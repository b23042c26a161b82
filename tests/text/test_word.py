"""Whole-word healing (autocomplete.text.word) against a brute-force oracle on a small vocabulary, a made-up model
whose next-token odds depend on the last token only, so every sequence's probability can be written out; then
the real mechanics on the tiny GPT-2."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest

from autocomplete.text import word
from autocomplete.text.caches import kept
from autocomplete.text.heal import Healing, Vocab
from autocomplete.text.prompt import Prompt
from autocomplete.text.sample import generate

# " you" is the likeliest first token for " yo" (0.5 against " York"'s 0.2), but " you" goes on as "tube" or
# "th" and "york" is also ` yo` + `rk`: the likeliest whole word is "york" (0.2 + 0.15 x 0.9 = 0.335, against
# "you" 0.5 x 0.1 ... and "youtube" 0.5 x 0.45 x 0.8 = 0.18).
PIECES = [b"\n", b" yo", b" you", b" York", b"rk", b"tube", b"th", b" y", b"o", b" city", b"", b"s"]
EOS = PIECES.index(b"")
NEXT = {  # last token -> {next token: probability}; the rest of the mass on " city" (a new word)
    "start": {b" you": 0.5, b" York": 0.2, b" yo": 0.15, b" y": 0.05, b"\n": 0.1},
    b" you": {b"tube": 0.45, b"th": 0.35, b"s": 0.1},
    b" yo": {b"rk": 0.9, b"s": 0.05},
    b" y": {b"o": 1.0},
    b"o": {b"rk": 0.5, b"s": 0.1},
    b"tube": {b"s": 0.2},
    b"th": {b"s": 0.1},
}


def table() -> np.ndarray:
    """[len(PIECES) + 1, len(PIECES)] log-probabilities: a row per last token, the last row the start."""
    rows = []
    for last in [*PIECES, "start"]:
        odds = NEXT.get(last, {})
        p = np.full(len(PIECES), 1e-9)
        for piece, q in odds.items():
            p[PIECES.index(piece)] = q
        p[PIECES.index(b" city")] += max(0.0, 1.0 - sum(odds.values()))
        rows.append(np.log(p / p.sum()))
    return np.array(rows, dtype=np.float32)


class BigramEngine:
    """The engine interface (autocomplete.engine.engine) over the table: a state is the ids read."""

    identity = "bigram"

    def __init__(self):
        self.log = table()
        self.reads = 0

    def _after(self, state) -> np.ndarray:
        return self.log[-1] if len(state) == 1 else self.log[state[-1]]  # the prompt is one line break

    def read(self, ids, after=None, room=0):
        self.reads += 1
        state = list(after or ()) + list(ids)
        return self._after(state), state

    def extend(self, state, token):
        state.append(token)
        return self._after(state)

    def length(self, state) -> int:
        return len(state)

    def nbytes(self, state) -> int:
        return 8 * len(state)

    def tree(self, state):
        engine = self
        return SimpleNamespace(nbytes=0, holds=lambda c: True, drop=lambda c: None,  # each row read whole
                               next_logits=lambda continuations: np.stack(
                                   [engine._after(list(state) + list(c)) for c in continuations]))


def encode(text: str, special: bool = False) -> list[int]:
    """The made-up model's tokenizer: the longest piece that fits, left to right (" york" is " yo" + "rk", " York"
    one token; " y" + "o" + "rk" is a path to " york" that it never writes)."""
    data, ids = text.encode(), []
    while data:
        best = max((i for i, piece in enumerate(PIECES) if piece and data.startswith(piece)),
                   key=lambda i: len(PIECES[i]), default=None)
        if best is None:
            return ids  # bytes no piece spells: not given back
        ids.append(best)
        data = data[len(PIECES[best]):]
    return ids


def bigram_lm():
    vocab = Vocab.__new__(Vocab)
    vocab.pieces, vocab._index = list(PIECES), {}
    lm = FakeModel(engine=BigramEngine(), eos_ids=frozenset({EOS}), prefixes=None, encode=encode)
    kept(lm).vocab = vocab
    return lm


class FakeModel:
    """A stand-in LoadedModel (its caches are kept beside it, by a weak reference: SimpleNamespace takes none)."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


def prompt(lm, tail: bytes, fold: bool) -> Prompt:
    vocab = kept(lm).vocab
    return Prompt("query" if fold else "text", [0], None, Healing(vocab, tail, fold=fold), 24, 1, vocab)


def oracle(tail: bytes, fold: bool, depth: int = 4) -> dict[bytes, float]:
    """Every sequence of up to `depth` tokens (the words here take at most 4), written out: those whose bytes
    spell the tail then carry the word on (letters), ended by a token that starts a new word (or the end), summed
    per word (lower-cased if fold) over the sequences that are the tokenizer's own (encode) only."""
    log = table()
    words: dict[bytes, float] = {}
    for n in range(1, depth + 1):
        for seq in itertools.product(range(len(PIECES)), repeat=n):
            data = b"".join(PIECES[t] for t in seq)
            if not all(PIECES[t] for t in seq) or len(data) < len(tail):
                continue  # (the end of the text spells nothing)
            if (data[: len(tail)].lower() if fold else data[: len(tail)]) != (tail.lower() if fold else tail):
                continue
            rest = data[len(tail):]
            if rest and not rest.decode().isalnum():
                continue  # a boundary inside: not one word
            if encode(data.decode()) != list(seq):
                continue  # not how the tokenizer writes it
            p, last = 1.0, len(PIECES)  # the start row
            for t in seq:
                p *= math.exp(log[last][t])
                last = t
            ends = sum(math.exp(log[last][t]) for t, piece in enumerate(PIECES)
                       if t == EOS or piece and not piece[:1].decode().isalnum())
            key = data.lower() if fold else data
            words[key] = words.get(key, 0.0) + p * ends
    return words


@pytest.mark.parametrize("tail, fold", [(b" yo", True), (b" yo", False), (b" y", True)])
def test_the_word_chosen_is_the_oracles_likeliest(tail, fold):
    lm = bigram_lm()
    truth = oracle(tail, fold)
    found = word.choose(lm, prompt(lm, tail, fold))
    best = max(truth, key=truth.get)
    assert found.exact and (found.text.encode().lower() if fold else found.text.encode()) == best
    for text, p in found.candidates:  # what it found is the oracle's, summed over the tokenizations it read
        assert p <= truth[text.encode().lower() if fold else text.encode()] + 1e-6
    # it stopped once sure: the best word's share found beats every other word's whole probability
    assert found.candidates[0][1] > max(p for key, p in truth.items() if key != best)


def test_york_over_the_likeliest_first_token():
    """The point of it: token healing alone (greedy, one token at a time) writes " you" + "tube"; the whole word
    is "york": ` York` and, in lower case, ` yo` + `rk`, summed."""
    lm = bigram_lm()
    read = prompt(lm, b" yo", True)
    greedy = list(generate(lm.engine, read.ids, 2, temperature=0, allowed=read.allowed))
    assert kept(lm).vocab.bytes_of(greedy) == b" youtube"
    found = word.choose(lm, read)
    assert found.text == " York" and found.tokens == [PIECES.index(b" York")]  # its likeliest tokenization
    york, p = found.candidates[0]
    assert york == " York" and p > 0.2 + 1e-6  # more than ` York` alone: ` yo` + `rk` counted in


def test_sampled_words_follow_their_probabilities():
    lm = bigram_lm()
    read = prompt(lm, b" yo", True)
    truth = oracle(b" yo", True)
    rng = np.random.default_rng(0)
    picks = [word.choose(lm, read, temperature=1.0, rng=rng).text.lower().encode() for _ in range(400)]
    total = sum(truth.values())
    for key in (b" york", b" you"):
        assert picks.count(key) / len(picks) == pytest.approx(truth[key] / total, abs=0.08)


def test_bounds_say_when_they_cut(monkeypatch):
    lm = bigram_lm()
    monkeypatch.setattr(word, "WORD_EXPANSIONS", 1)
    found = word.choose(lm, prompt(lm, b" yo", True))
    assert found is not None and not found.exact and found.expansions == 1


# --- the tiny GPT-2: the mechanics ----------------------------------------------------------------------------


def test_a_completion_starts_with_the_word_and_reads_the_prompt_once(tiny, monkeypatch):
    from autocomplete.settings import Params
    from autocomplete.text.complete import complete

    reads = []
    tiny.prefixes = None  # nothing remembered from an earlier test
    real = tiny.engine.read
    monkeypatch.setattr(tiny.engine, "read", lambda ids, after=None, room=0: reads.append(list(ids))
                        or real(ids, after, room))
    pieces = []
    done = complete(tiny, "san fr", Params(temperature=0, max_tokens=6, style="text"), pieces.append)
    assert done.completion == "".join(pieces) and done.completion.startswith("ancisco")
    assert done.word is not None and done.word.text == " francisco"
    assert done.tokens[: len(done.word.tokens)] == done.word.tokens
    # the prompt read once (the search grows from it), then the word read after it
    assert reads[0] == tiny.encode("san") and reads[1] == done.word.tokens and len(reads) == 2


@pytest.mark.parametrize("max_new", [1, 3])
def test_a_word_at_the_end_of_the_context_window_reads_no_row_past_it(tiny, max_new):
    """With the window full, a word's tokens get only the room left: every row read fits (a row past it once
    failed on the ONNX engine, "indices element out of data bounds")."""
    from autocomplete.text.prompt import prepare

    for tail in ["san", "seoul sub", "i love pi"]:
        read = prepare(tiny, "seoul subway map " * 40 + tail, "text", None, max_new, quiet=True)
        assert len(read.ids) + read.max_new <= tiny.context_length
        chosen = word.choose(tiny, read)
        assert chosen is not None and chosen.text.startswith(read.healing.text)
        assert len(chosen.tokens) <= read.max_new
