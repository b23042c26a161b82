"""Token healing: complete the word being typed from its letters, not from a token boundary the model never saw.

"stock mar" tokenizes as `stock`, ` mar`, but the model learned ` market` as one token: after ` mar` it writes
`ques`. So the partial word at the end of the prompt is taken back out of the prompt (`back_up`), and the first
generated tokens must spell it again (`Healing`): each one either begins with the letters still to spell (` market`)
or, when no token does, is a piece of them (a word the vocabulary splits, a multi-byte character). Everything is in
bytes, so a character split across tokens is no different from a word split across tokens. Preferring a token
that covers all the typed letters keeps the model on the tokenization it was trained on: offered ` it` for "ita",
it would pick the common word and then have to force "a…" after it.
"""

from __future__ import annotations

import bisect
import re
from functools import cache

import numpy as np

from autocomplete.settings import Params

# How many tokens of a long word are taken back at most: each costs one forward to spell again.
MAX_TAIL_TOKENS = 8
# The model's own odds, unshaped by the sampler.
MODELS_ODDS = Params(temperature=1.0, top_k=0, top_p=1.0)


def odds_while_spelling(rest: bytes | str, params: Params) -> Params:
    """What a suggestion search draws the next token by while `rest` of the typed word is still to spell (over the
    tokens that fit, in process and over --api alike). While letters are, the model's own odds: the letters are
    given, and which word they become is the model's to say (under the sampler's, T 0.7 and top-p 0.95 over the
    tokens that fit gave " you" all of "new yo" and left " York" out). A space alone starts a new word under the
    sampler's odds, as every word after it does (at T 1, "how " had searched 172 rows where "how" had needed 142)."""
    return MODELS_ODDS if rest.strip() else params


@cache
def _byte_level_chars() -> dict[str, int]:
    """GPT-2's byte-level BPE writes each byte as a printable character: printable bytes as themselves, the
    others shifted past U+0100, in order. The inverse of that table."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, shift = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + shift)] = b
            shift += 1
    return chars


_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # SentencePiece's byte fallback


class Vocab:
    """Every token's bytes, and which tokens begin with (or are a piece of) given bytes."""

    def __init__(self, tokenizer):
        raw = [str(piece or "") for piece in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))]
        sentencepiece = any("▁" in piece for piece in raw[:2000])
        to_bytes = str.maketrans({c: chr(b) for c, b in _byte_level_chars().items()})
        self.pieces: list[bytes] = []
        for piece in raw:
            if sentencepiece:
                byte = _BYTE_TOKEN.fullmatch(piece)
                self.pieces.append(bytes([int(byte.group(1), 16)]) if byte else piece.replace("▁", " ").encode())
                continue
            try:
                self.pieces.append(piece.translate(to_bytes).encode("latin-1"))
            except UnicodeEncodeError:
                self.pieces.append(piece.encode())  # an added token, written as itself
        for i in tokenizer.all_special_ids:
            if i < len(self.pieces):
                self.pieces[i] = b""  # never written out, never spells anything
        self._index: dict[bool, tuple[list[bytes], list[int]]] = {}

    def to_bytes(self) -> bytes:
        """The pieces and both sorted orders, for a cold call to read back (about 20 ms) instead of building them
        from the tokenizer (about 80 ms for 49,152 tokens): plain arrays of lengths and ids, then the bytes."""
        from array import array

        orders = [self._sorted(fold)[1] for fold in (False, True)]
        header = array("I", [len(self.pieces), *(len(order) for order in orders)])
        arrays = [header, array("I", map(len, self.pieces)), *(array("I", order) for order in orders)]
        return b"".join(a.tobytes() for a in arrays) + b"".join(self.pieces)

    @classmethod
    def from_bytes(cls, data: bytes) -> Vocab:
        """Raises ValueError on anything to_bytes didn't write (a torn file, say)."""
        from array import array

        def ints(start: int, count: int) -> array:
            values = array("I")
            values.frombytes(data[start * 4:(start + count) * 4])
            if len(values) != count:
                raise ValueError("a stored vocabulary cut short")
            return values

        from itertools import accumulate

        n, *sizes = ints(0, 3)
        lengths = ints(3, n)
        at, orders = 3 + n, []
        for size in sizes:
            orders.append(list(ints(at, size)))
            at += size
        # (C-level loops: this runs on every cold call, 49,152 tokens for the starter)
        ends = list(accumulate(lengths, initial=at * 4))
        if ends[-1] != len(data) or any(order and max(order) >= n for order in orders):
            raise ValueError("a stored vocabulary that doesn't add up")
        vocab = cls.__new__(cls)
        vocab.pieces = pieces = list(map(data.__getitem__, map(slice, ends, ends[1:])))
        folded = list(map(bytes.lower, pieces))
        vocab._index = {fold: (list(map(keys.__getitem__, order)), order)
                        for fold, keys, order in ((False, pieces, orders[0]), (True, folded, orders[1]))}
        return vocab

    def _sorted(self, fold: bool) -> tuple[list[bytes], list[int]]:
        """The tokens sorted by their bytes (lower-cased if fold), so that those beginning with some bytes are one
        run; built when first needed."""
        if fold not in self._index:
            keys = [p.lower() for p in self.pieces] if fold else self.pieces
            ids = sorted((i for i, p in enumerate(keys) if p), key=keys.__getitem__)
            self._index[fold] = [keys[i] for i in ids], ids
        return self._index[fold]

    def __len__(self) -> int:
        return len(self.pieces)

    def bytes_of(self, ids: list[int]) -> bytes:
        return b"".join(self.pieces[i] for i in ids if i < len(self.pieces))

    def text(self, ids: list[int]) -> str:
        """The text of `ids`: like the tokenizer's decode without special tokens, and exact in bytes (a leading
        space is kept; an unfinished character is U+FFFD until its other bytes come)."""
        return self.bytes_of(ids).decode("utf-8", errors="replace")

    def starting_with(self, prefix: bytes, exact: bool = False, fold: bool = False) -> list[int]:
        """Tokens whose bytes begin with `prefix` (exact: are `prefix`; fold: ignoring the case of ASCII letters)."""
        keys, ids = self._sorted(fold)
        prefix = prefix.lower() if fold else prefix
        lo = bisect.bisect_left(keys, prefix)
        if exact:
            return ids[lo:bisect.bisect_right(keys, prefix, lo)]
        # The run ends before the first key past every continuation of prefix: its last byte that can grow, grown
        # (a scan instead read 25,000 keys for b" ").
        end = prefix.rstrip(b"\xff")
        hi = bisect.bisect_left(keys, end[:-1] + bytes([end[-1] + 1]), lo) if end else len(keys)
        return ids[lo:hi]

    def pieces_of(self, text: bytes, fold: bool = False) -> list[int]:
        """Tokens that are a proper beginning of `text`."""
        return [i for k in range(1, len(text)) for i in self.starting_with(text[:k], exact=True, fold=fold)]


class Canonical:
    """Whether tokens are the ones the tokenizer writes their text with, the only tokenization of it the model saw in
    training. The other paths to the same letters (" l" + "u" + "ai" + "y" + "un") are probability a small model
    leaks, not words it writes: summed, that mass chose made-up words. So a word or a suggestion is credited through
    its canonical tokens alone. A text the tokenizer doesn't give back as it was (one its normaliser rewrites) can't
    be judged so: any tokens of it count."""

    KEPT = 1 << 16  # answers remembered (a warm server's keystrokes ask again and again)

    def __init__(self, encode, vocab: Vocab, prefix_closed: bool = False):
        """prefix_closed: the tokenizer is byte-level BPE, whose canonical tokenizations are prefix-closed
        (may_grow)."""
        self.encode, self.vocab, self.prefix_closed = encode, vocab, prefix_closed
        self._seen: dict[tuple, bool] = {}
        self._starts: dict[int, bool] = {}  # whether a token begins a word

    def __call__(self, ids) -> bool:
        """Whether `ids` are the canonical tokens of their text (False while they end inside a character)."""
        ids = tuple(ids)
        if not ids:
            return True
        if ids not in self._seen:
            try:
                text = self.vocab.bytes_of(list(ids)).decode("utf-8")
            except UnicodeDecodeError:
                self._seen[ids] = False
            else:
                own = tuple(self.encode(text))
                if len(self._seen) >= self.KEPT:
                    self._seen.clear()
                self._seen[ids] = own == ids or self.vocab.text(list(own)) != text
        return self._seen[ids]

    def may_grow(self, ids) -> bool:
        """Whether tokens appended to `ids` may still be the canonical tokens of their text. A byte-level BPE
        tokenization is canonical only if every beginning of it is (prefix-closed: the tests check it on the starter's
        tokenizer), but for a text that ends inside a character or in white space (the last space goes with the
        word after it); for another tokenizer, only the finished words are judged (words())."""
        if not self.prefix_closed:
            return self.words(ids)
        if self(ids):
            return True
        try:
            text = self.vocab.bytes_of(list(ids)).decode("utf-8")
        except UnicodeDecodeError:
            return True
        return text[-1:].isspace()

    def words(self, ids) -> bool:
        """Whether the words `ids` have finished (all but the last, which a token may still carry on) are canonical."""
        ids = tuple(ids)
        last = next((i for i in range(len(ids) - 1, 0, -1) if self._starts_word(ids[i])), 0)
        return self(ids[:last]) if last > 0 else True

    def _starts_word(self, token: int) -> bool:
        if token not in self._starts:
            self._starts[token] = _starts_word(self.vocab.pieces[token] if token < len(self.vocab) else b"")
        return self._starts[token]


def _starts_word(piece: bytes) -> bool:
    first = piece[:4].decode("utf-8", errors="replace")[:1]
    return bool(first) and not first.isalnum() and first != "\ufffd"


def back_up(ids: list[int], vocab: Vocab) -> tuple[list[int], bytes]:
    """(ids without the word being typed, that word's bytes). The word is the last run of tokens with no
    whitespace inside, with its leading space; a prompt ending in whitespace gives back just that whitespace, so
    the completion starts a new word. Never stops inside a character."""
    n, tail = 0, b""
    while n < len(ids):
        piece = vocab.pieces[ids[len(ids) - 1 - n]]
        if not piece:
            break  # a special token is not typed text
        if tail and not _inside_character(tail):  # whole characters so far: may stop here
            if tail.decode("utf-8", errors="replace")[0].isspace():
                break  # the word's leading space (or the prompt's trailing whitespace) is in
            before = piece.decode("utf-8", errors="ignore")  # a piece of a character has no whitespace
            if n >= MAX_TAIL_TOKENS or before.isspace() or _has_space(before.lstrip()):
                break  # whitespace alone, or another word, comes before the word
        tail, n = piece + tail, n + 1
    return ids[: len(ids) - n], tail


def _has_space(text: str) -> bool:
    return any(c.isspace() for c in text)


def _inside_character(data: bytes) -> bool:
    return bool(data) and 0x80 <= data[0] <= 0xBF  # a UTF-8 continuation byte


class Healing:
    """The constraint on the first generated tokens: together they must spell `tail`, then anything goes.
    fold: letters match whatever their case, as in a search box ("las veg" finds " Vegas"); the tokens keep the
    model's case, and what is shown after the typed letters is the model's."""

    def __init__(self, vocab: Vocab, tail: bytes, fold: bool = False):
        self.vocab, self.tail, self.fold = vocab, tail, fold
        self._allowed: dict[bytes, np.ndarray] = {}
        self._every: dict[bytes, np.ndarray] = {}

    @property
    def text(self) -> str:
        return self.tail.decode("utf-8", errors="replace")

    def remaining(self, generated: list[int]) -> bytes:
        """What of the tail is still to spell after `generated` (b"" once spelled)."""
        if len(generated) >= len(self.tail):
            return b""  # every token allowed while spelling has a byte at least: spelled (no per-token join after)
        spelled = self.vocab.bytes_of(generated)
        return self.tail[len(spelled):] if len(spelled) < len(self.tail) else b""

    def allowed(self, generated: list[int]) -> np.ndarray | None:
        """The token ids the next token may be, or None when anything may come."""
        rest = self.remaining(generated)
        if not rest:
            return None
        if rest not in self._allowed:
            ids = self.vocab.starting_with(rest, fold=self.fold) or self.vocab.pieces_of(rest, fold=self.fold)
            self._allowed[rest] = np.array(ids, dtype=np.int64)
        return self._allowed[rest]

    def every(self, generated: list[int]) -> np.ndarray | None:
        """Every token the next one may be and the tokens still spell the tail: those that begin with what is
        left and those that are a piece of it (whole-word healing counts every tokenization of a word; `allowed`
        keeps to the one the model was trained on). None once spelled."""
        rest = self.remaining(generated)
        return self.every_for(rest) if rest else None

    def every_for(self, rest: bytes) -> np.ndarray:
        """`every` once `rest` is what is left to spell."""
        if rest not in self._every:
            ids = self.vocab.starting_with(rest, fold=self.fold) + self.vocab.pieces_of(rest, fold=self.fold)
            self._every[rest] = np.array(sorted(set(ids)), dtype=np.int64)
        return self._every[rest]


def restrict(logits: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """logits with every token outside `allowed` at -inf (so its probability is 0 at any temperature)."""
    if allowed is None:
        return logits
    out = np.full_like(logits, -np.inf)
    out[..., allowed] = logits[..., allowed]
    return out
