"""What the text layer keeps per loaded model, built when first needed: every token's bytes (heal.Vocab, by
prompt.vocabulary), the query frames' KV caches (prompt.py), masks over the vocabulary (masks.py). Kept beside the
model, not on it (the engine layer doesn't know what the text layer builds), and let go with it."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field


@dataclass
class Kept:
    vocab: object = None  # autocomplete.text.heal.Vocab
    frames: dict = field(default_factory=dict)  # example queries -> their KV cache, most recently used last
    masks: dict = field(default_factory=dict)  # (what, size) -> a mask over the vocabulary


_KEPT: dict[int, Kept] = {}


def kept(lm) -> Kept:
    """What is kept for this loaded model (a LoadedModel; any object that takes a weak reference)."""
    found = _KEPT.get(id(lm))
    if found is None:
        found = _KEPT[id(lm)] = Kept()
        weakref.finalize(lm, _KEPT.pop, id(lm), None)
    return found
