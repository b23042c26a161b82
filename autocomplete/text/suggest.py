"""Search-box suggestions: the N likeliest distinct completions of a prefix.

In the query style a suggestion is a whole query: P(its tokens) x P(the query ends there: a line break or the end
of the text). In the text style it ends at a word boundary: P(tokens) x P(next token starts a new word or ends the
text). Either way the probability is the chance that the model, sampling under the current temperature / top-k /
top-p, writes exactly those tokens once the first ones have spelled the word being typed again, in any of the ways
the vocabulary can spell it (whole-word healing; while they spell it, the model's own odds count: which word the
letters become is the model's to say); the tokenizations found of one suggestion (and its case and spacing
variants) are summed. A suggestion that says a word twice back to back is never listed, nor followed
(autocomplete.text.suggestions.repeats).

The search is autocomplete.text.search's best-first one, over the model's rows: each forward reads a batch of the
likeliest waiting prefixes not read before, sharing the prompt's keys and values; a prefix an earlier list read
(the previous keystroke's: autocomplete.engine.prefix) is expanded without one.

Bounds, and what they cut counts as left out (`exact` False, said under the list): MAX_CHILDREN tokens a prefix,
MAX_EXPANSIONS prefixes, and for a list refreshed at every keystroke (the REPL's, `reads`) KEYSTROKE_READS rows
read (read on while the list has fewer than N: a list is never left empty for speed). Rows an earlier list read
are free, so typing on, each list searches deeper than the one before.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from autocomplete.engine.models import LoadedModel
from autocomplete.settings import Settings
from autocomplete.text.heal import odds_while_spelling
from autocomplete.text.masks import line_ends, word_starts
from autocomplete.text.prompt import prepare
from autocomplete.text.sample import probabilities
from autocomplete.text.search import Row, Tree, best_first
from autocomplete.text.suggestions import Found

# Children kept per prefix: a bound on work with a 50k vocabulary; top-k below this makes the search exact.
MAX_CHILDREN = 64
MAX_EXPANSIONS = 400
# Rows a list refreshed per keystroke reads (see the module): one forward's. Our prefixes typed letter by letter,
# the last keystroke's list (bench/quality.py keystroke_success): the right word in the top 5 for 3+ letters typed
# 95% at 8 against 93% at 24, 1-2 letters 98% at both, in 0.76x the time a keystroke (most of it is filling a list
# not yet full, which no bound cuts). A list asked for once is searched in full: typed at once with a bound, "new
# yo" listed "new york city" and then "new youtube …", its reads spent under " you" (75% of the spelling).
KEYSTROKE_READS = 8
# KV-cache rows (prompt tokens x batch) copied per step: bounds memory on a long piped prompt.
CACHE_BUDGET = 8192


def suggest(lm: LoadedModel, prefix: str, settings: Settings, n: int = 5, words: int = 3,
            batch: int = 8, check: Callable[[], None] = lambda: None, reads: int | None = None) -> Found:
    """The n likeliest suggestions. In the query style a suggestion is a whole query: its probability is that of
    its tokens and then the end of the query. In the text style it ends at a word boundary.
    batch: rows read per forward. A forward of 8 rows took 47 ms against 26 ms for one and 83 ms for 16 (the
    starter, int8, the AMX Xeon); at 12 or 16 the read bound bought worse lists (the right word in 92% of top 5s
    on our prefixes against 95%) no faster, the wider batch reading prefixes that turned out not to matter.
    check: called before every forward; what it raises ends the search (the warm server's client hung up).
    reads: rows the list may read (KEYSTROKE_READS for a list refreshed per keystroke); None: as many as it takes."""
    read = prepare(lm, prefix, settings.style, settings.examples, words * 8, quiet=True)
    # Remembered (autocomplete.engine.prefix): the next keystroke's search finds this one's rows read and digested,
    # and one past a word finds its start as a row of this one's tree.
    root_read = read.root(lm, grown=True)
    # The typed letters spelled again in every way the vocabulary can (whole-word healing, as autocomplete.text.word
    # does for one word): "new yo" finds "york" as ` yo` + `rk` too, a tokenization token healing never tries.
    # Our prefixes' right word in the top 5 with the model's own odds while spelling (odds_while_spelling): 1-2
    # letters typed 86% -> 98%, 3+ letters 95%.
    ends = (line_ends if read.style == "query" else word_starts)(lm, root_read.logits.shape[-1])
    context = len(read.ids) + (len(read.frame.ids) if read.frame else 0)
    batch = max(1, min(batch, CACHE_BUDGET // max(1, context)))

    def key(tokens: tuple[int, ...]) -> tuple:
        """What a row's digest depends on besides its logits: the letters still to spell and the odds they go by."""
        rest = read.healing.remaining(list(tokens)) if read.healing else b""
        odds = odds_while_spelling(rest, settings)
        return ("suggest", read.style, rest, rest and read.healing.fold, odds.temperature, odds.top_k, odds.top_p)

    def digest(logits: np.ndarray, key: tuple) -> Row:
        _, _, rest, _, temperature, top_k, top_p = key
        # Only the tokens that can get a probability are warped (a row's whole vocabulary took 2 ms): those that
        # spell what is left of the letters, else the top k and any tied with the k-th. The rest get 0 either way.
        ids = read.healing.every_for(rest) if rest else None
        if ids is None and 0 < top_k < logits.size:
            ids = np.flatnonzero(logits >= np.partition(logits, -top_k)[-top_k])
        probs = probabilities((logits if ids is None else logits[ids])[None], temperature, top_k, top_p)[0]
        candidates = np.flatnonzero(probs)
        k = min(MAX_CHILDREN, candidates.size)
        top = candidates[np.argpartition(probs[candidates], -k)[-k:]] if k < candidates.size else candidates
        top = top[np.argsort(-probs[top], kind="stable")]
        end = float(probs[ends if ids is None else ends[ids]].sum())
        return Row(end, (top if ids is None else ids[top]).tolist(), probs[top].tolist(), k < candidates.size)

    root = root_read.memo(key(()), digest)
    tree = root_read.tree

    def forward(nodes: list[tuple[int, ...]]) -> list[Row]:
        check()
        return tree.memo(nodes, [key(tokens) for tokens in nodes], digest)

    def known(tokens: tuple[int, ...]) -> Row | None:
        """A row an earlier list read (the previous keystroke's): expanded for nothing."""
        return tree.memo([tokens], [key(tokens)], digest)[0] if tree.read(tokens) else None

    result = best_first(
        Tree(read=forward, shown=lambda tokens: read.shown(list(tokens)),
             spelled=lambda tokens: read.healing is None or not read.healing.remaining(list(tokens)),
             ends_text=lm.eos_ids, bound=MAX_EXPANSIONS, batch=batch, room=read.max_new, known=known),
        root, prefix, read.style, n, words, reads)
    bounds = ([f"{reads} rows read"] if reads is not None else []) + [f"{MAX_CHILDREN} tokens a step",
                                                                      f"{MAX_EXPANSIONS} prefixes"]
    result.note = (f"The search stopped at its bound ({', '.join(bounds)}): a suggestion it left out could be "
                   "likelier than the last ones shown.")
    return result
