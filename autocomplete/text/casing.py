"""Case, as a search box meets it: people type lower case, and the model knows names in their own ("Las Vegas").

A query typed in lower case is read in a few casings: as typed, and with each word capitalised, the natural case of
names. Each casing is weighted by the model's own odds of the typed words being written that way at the start of a
text (P("Las" + " Ve…") against P("las" + " ve…"): a name's capitals are likely, a sentence's words' are not), and a
suggestion's probability is the mixture: P(s) = sum over casings c of P(c) x P(s | c) / sum of P(c). What a casing
adds is shown in the user's case (lower), and a suggestion found in several casings is one, its probabilities summed.
A query typed with capitals is the user's own casing: read as typed only.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

from autocomplete.text.heal import Healing
from autocomplete.text.prompt import vocabulary

if TYPE_CHECKING:
    from autocomplete.engine.models import LoadedModel
    from autocomplete.text.prompt import Prompt

_WORD_START = re.compile(r"(?<![^\W\d_])[^\W\d_]")  # a letter with no letter before it


def casings(text: str, style: str) -> list[str]:
    """The casings a prompt is read in: as typed, then (a lower-case query) each word capitalised."""
    if style != "query" or text != text.lower():
        return [text]
    capitalised = _WORD_START.sub(lambda m: m.group(0).upper(), text)
    return [text] if capitalised == text else [text, capitalised]


def apart(reads: list[Prompt]) -> tuple[list[Prompt], bool]:
    """The casings' reads as searched, and whether they differ in the word being typed only (one word typed, read
    after the same line break): then each spells it in its own case, not folded (folded, the frame's lower-case
    queries would speak for lower case whatever the word), and a token sequence is in the casing its first letter
    is. One whose word doesn't begin with a letter can't be told apart so: read once, folded."""
    if len(reads) == 1 or len({tuple(read.ids) for read in reads}) > 1:
        return reads, False
    if not all(read.healing and read.healing.tail[:1].isalpha() for read in reads):
        return reads[:1], False
    return [dataclasses.replace(read, healing=Healing(read.vocab, read.healing.tail, fold=False))
            for read in reads], True


def weights(lm: LoadedModel, reads: list[Prompt]) -> list[float]:
    """Each casing's share of the mixture: the model's odds (T 1) of the typed text in that casing at the start of a
    text (not after the frame, whose lower-case queries would speak for lower case whatever the words): its words'
    tokens, then a first token of the last word (one that begins with its typed letters, or a piece of them),
    normalised. Read as rows of one tree,
    remembered (autocomplete.engine.prefix), so a keystroke that only adds letters reads nothing new."""
    import numpy as np  # waits: a one-shot completion read in one casing never loads it

    if len(reads) == 1:
        return [1.0]
    if lm.prefixes is None:
        from autocomplete.engine.prefix import Prefixes  # loads numpy

        lm.prefixes = Prefixes()
    start = lm.tokenizer.bos_token_id if lm.tokenizer.bos_token_id is not None else lm.tokenizer.eos_token_id
    root = lm.prefixes.root(lm.engine, [start], None, None)
    paths = [tuple(read.ids[1:]) for read in reads]  # the words before the one being typed (after the frame's \n)
    rows = sorted({path[:i] for path in paths for i in range(1, len(path) + 1)})
    # A row's log-probabilities: its logits less their log-sum-exp, kept with the row (the next keystroke asks again)
    lse = dict(zip(rows, root.tree.memo(rows, [_LSE] * len(rows), _lse))) if rows else {}
    logits = dict(zip(rows, root.tree.next_logits(rows))) if rows else {}
    lse[()], logits[()] = root.memo(_LSE, _lse), root.logits
    vocab = vocabulary(lm)
    logp = []
    for path, read in zip(paths, reads):
        total = sum(float(logits[path[:i]][path[i]]) - lse[path[:i]] for i in range(len(path)))
        typed = read.healing.tail if read.healing else b""
        if typed:  # the first token of the last word: one that spells the typed letters, or a piece of them
            first = vocab.starting_with(typed) + vocab.pieces_of(typed)
            total += float(np.log(np.exp(logits[path][first].astype(np.float64) - lse[path]).sum() + 1e-300))
        logp.append(total)
    shares = np.exp(np.array(logp) - max(logp))
    return (shares / shares.sum()).tolist()


_LSE = "casing: log-sum-exp"


def _lse(logits, key) -> float:
    """log(sum(exp(logits))), in float64."""
    import numpy as np  # waits, as in weights()

    top = float(logits.max())
    return top + float(np.log(np.exp(logits.astype(np.float64) - top).sum()))
