"""Masks over the vocabulary, by what a token does to the word being written: begins a new one, ends a query, or
carries it on; and which token sequences are the tokenizer's own (canonical). Built once per model (masks: and
logits size, a graph's output may be padded past the tokenizer), kept in the model's `masks`."""

from __future__ import annotations

import numpy as np

from autocomplete.engine.models import LoadedModel
from autocomplete.text.caches import kept
from autocomplete.text.heal import Canonical
from autocomplete.text.prompt import vocabulary


def word_starts(lm: LoadedModel, size: int) -> np.ndarray:
    """Tokens that begin a new word (space, punctuation) or end the text."""
    return _kept(lm, "word_starts", size, lambda: _with_eos(lm, size, [
        bool(c) and not c.isalnum() and c != "\ufffd"
        for c in (piece[:4].decode("utf-8", errors="replace")[:1] for piece in vocabulary(lm).pieces[:size])]))


def line_ends(lm: LoadedModel, size: int) -> np.ndarray:
    """Tokens that end a query (a line break, or the end of the text)."""
    return _kept(lm, "line_ends", size, lambda: _with_eos(lm, size, [
        piece[:1] in (b"\n", b"\r") for piece in vocabulary(lm).pieces[:size]]))


def carries_on(lm: LoadedModel, size: int) -> np.ndarray:
    """Tokens that carry a word on (a letter, a digit, the rest of a character), not those that start a new one
    or end it, nor special tokens (they spell nothing)."""
    def build():
        spells = np.zeros(size, dtype=bool)
        pieces = vocabulary(lm).pieces[:size]
        spells[: len(pieces)] = [bool(piece) for piece in pieces]
        return spells & ~word_starts(lm, size)

    return _kept(lm, "carries_on", size, build)


def canonical(lm: LoadedModel) -> Canonical:
    """Whether token ids are the ones the tokenizer writes their text with."""
    return _kept(lm, "canonical", 0, lambda: Canonical(lambda text: lm.encode(text, special=False), vocabulary(lm),
                                                       prefix_closed=byte_level_bpe(getattr(lm, "tokenizer", None))))


def byte_level_bpe(tokenizer) -> bool:
    """Whether a tokenizer (ours, or transformers' fast one) is byte-level BPE (GPT-2's, Llama 3's, SmolLM2's)."""
    backend = getattr(tokenizer, "_tok", None) or getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or type(backend.model).__name__ != "BPE":
        return False
    return b'"ByteLevel"' in (backend.pre_tokenizer.__getstate__() if backend.pre_tokenizer is not None else b"")


def _kept(lm: LoadedModel, name: str, size: int, build):
    key = (name, size)
    if key not in kept(lm).masks:
        kept(lm).masks[key] = build()
    return kept(lm).masks[key]


def _with_eos(lm: LoadedModel, size: int, flags: list[bool]) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[: len(flags)] = flags
    mask[[eos for eos in lm.eos_ids if eos < size]] = True  # the end of the text ends a word and a query too
    return mask
