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

Bounds, and what they cut counts as left out (`exact` False, said under the list): SUGGEST_CHILDREN tokens a prefix,
SUGGEST_EXPANSIONS prefixes, and for a list refreshed at every keystroke (the REPL's, `reads`) KEYSTROKE_READS rows
read (read on, depth first, while the list is empty: a list is never left empty for speed). Rows an earlier list
read are free, so typing on, each list searches deeper than the one before.

A lower-case query is read in its casings (autocomplete.text.casing), in one tree: each casing's words a path in it
(one word typed: a node is in the casing its first letter is), each row digested under its casing's letters, and
the casings' shares weigh their roots. A suggestion is credited only through the tokens the tokenizer writes its
text with (autocomplete.text.heal.Canonical), and a node is followed only while more tokens may still make it so
(on a byte-level BPE, only while it is so: a spelled-out path to the typed letters is never read).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from autocomplete.engine.models import LoadedModel
from autocomplete.settings import Params
from autocomplete.text.heal import Healing, odds_while_spelling
from autocomplete.text.masks import canonical, line_ends, word_starts
from autocomplete.text import frames
from autocomplete.text.casing import apart, casings, weights
from autocomplete.text.prompt import Prompt, prepare
from autocomplete.text.sample import kth_largest, probabilities
from autocomplete.text.search import Row, Space, best_first
from autocomplete.text.suggestions import Found

# Children kept per prefix: a bound on work with a 50k vocabulary; top-k below this makes the search exact.
SUGGEST_CHILDREN = 64
SUGGEST_EXPANSIONS = 400
# Rows a list refreshed per keystroke reads (see the module): one forward's. Our prefixes typed letter by letter,
# the last keystroke's list (bench/quality.py keystroke_success): the right word in the top 5 for 3+ letters typed
# 95% at 8 against 93% at 24, 1-2 letters 98% at both, in 0.76x the time a keystroke (most of it is filling a list
# not yet full, which no bound cuts). A list asked for once is searched in full: typed at once with a bound, "new
# yo" listed "new york city" and then "new youtube …", its reads spent under " you" (75% of the spelling).
KEYSTROKE_READS = 8
# KV-cache rows (prompt tokens x batch) copied per step: bounds memory on a long piped prompt.
CACHE_BUDGET = 8192


def suggest(lm: LoadedModel, prefix: str, params: Params, n: int = 5, words: int = 3,
            batch: int = 8, check: Callable[[], None] = lambda: None, reads: int | None = None) -> Found:
    """The n likeliest suggestions. In the query style a suggestion is a whole query: its probability is that of
    its tokens and then the end of the query. In the text style it ends at a word boundary.
    batch: rows read per forward. A forward of 8 rows took 47 ms against 26 ms for one and 83 ms for 16 (the
    starter, int8, the AMX Xeon); at 12 or 16 the read bound bought worse lists (the right word in 92% of top 5s
    on our prefixes against 95%) no faster, the wider batch reading prefixes that turned out not to matter.
    check: called before every forward; what it raises ends the search (the warm server's client hung up).
    reads: rows the list may read (KEYSTROKE_READS for a list refreshed per keystroke); None: as many as it takes.
    A lower-case query is searched in each of its casings (autocomplete.text.casing), the lists mixed."""
    style = frames.resolve(params.style, prefix)
    spellings = [prepare(lm, text, style, params.examples, words * 8, quiet=True)
                 for text in casings(prefix, style)]
    lower = len(spellings) > 1  # a lower-case query: suggestions shown in lower case, whatever case they're read in
    spellings, one_word = apart(spellings)  # one word typed: each casing spells it in its own case
    shares = weights(lm, spellings)
    # Remembered (autocomplete.engine.prefix): the next keystroke's search finds this one's rows read and digested.
    # One casing, or one word: the tree grows from the prompt's read (and one past a word finds its start as a row of
    # an earlier one's tree). Several words: from the frame's line break, every casing's words a path in it, all read
    # in one run.
    if len(spellings) == 1 or one_word:
        base, paths = spellings[0].root(lm, grown=True), [()] * len(spellings)
    else:
        base, paths = spellings[0].root(lm, ids=spellings[0].ids[:1]), [tuple(read.ids[1:]) for read in spellings]
    order = sorted(range(len(paths)), key=lambda c: -len(paths[c]))

    @functools.cache  # (asked of a node several times: its text, its spelling, its key, how it is written)
    def split(node: tuple[int, ...]) -> tuple[Prompt, tuple[int, ...]]:
        """The casing a node is in, and its tokens after that casing's prompt."""
        if one_word:
            first = read_bytes(node[:1])[:1]
            return spellings[next((c for c, read in enumerate(spellings) if read.healing.tail[:1] == first), 0)], node
        c = next((c for c in order if node[:len(paths[c])] == paths[c]), 0)
        return spellings[c], node[len(paths[c]):]

    # The typed letters spelled again in every way the vocabulary can (whole-word healing, as autocomplete.text.word
    # does for one word): "new yo" finds "york" as ` yo` + `rk` too, a tokenization token healing never tries.
    ends = (line_ends if style == "query" else word_starts)(lm, base.logits.shape[-1])
    context = max(len(read.ids) + (len(read.frame.ids) if read.frame else 0) for read in spellings)
    batch = max(1, min(batch, CACHE_BUDGET // max(1, context)))

    def key(node: tuple[int, ...], read: Prompt | None = None) -> tuple:
        """What a row's digest depends on besides its logits: the letters still to spell (in any case or not) and the
        odds they go by."""
        read, tokens = (read, node) if read else split(node)
        rest = read.healing.remaining(list(tokens)) if read.healing else b""
        odds = odds_while_spelling(rest, params)
        return ("suggest", style, rest, bool(rest) and read.healing.fold, odds.temperature, odds.top_k, odds.top_p)

    def digest(logits: np.ndarray, key: tuple) -> Row:
        _, _, rest, fold, temperature, top_k, top_p = key
        # Only the tokens that can get a probability are warped (a row's whole vocabulary took 2 ms): those that
        # spell what is left of the letters (in any case in the query style: the casings' lists are one), else the
        # top k and any tied with the k-th. The rest get 0 either way.
        ids = (folded if fold else exact).every_for(rest) if rest else None
        if ids is None and 0 < top_k < logits.size:
            ids = np.flatnonzero(logits >= kth_largest(logits, top_k))
        probs = probabilities((logits if ids is None else logits[ids])[None], temperature, top_k, top_p)[0]
        candidates = np.flatnonzero(probs)
        k = min(SUGGEST_CHILDREN, candidates.size)
        top = candidates[np.argpartition(probs[candidates], -k)[-k:]] if k < candidates.size else candidates
        top = top[np.argsort(-probs[top], kind="stable")]
        end = float(probs[ends if ids is None else ends[ids]].sum())
        return Row(end, (top if ids is None else ids[top]).tolist(), probs[top].tolist(), k < candidates.size)

    vocab = spellings[0].vocab
    folded, exact = Healing(vocab, b"", fold=True), Healing(vocab, b"", fold=False)  # (every_for: any rest)
    read_bytes = vocab.bytes_of
    tree = base.tree
    words_read = [path for path in paths if path]  # every casing's prompt, read in one run where not yet
    rows = dict(zip(words_read, tree.memo(words_read, [key(path) for path in words_read], digest)))
    roots = [(path, share, rows[path] if path else base.memo(key((), read), digest))
             for path, share, read in zip(paths, shares, spellings)]
    check()  # the prompt read: is anyone still waiting for the list?

    def forward(nodes: list[tuple[int, ...]]) -> list[Row]:
        check()
        return tree.memo(nodes, [key(tokens) for tokens in nodes], digest)

    def known(tokens: tuple[int, ...]) -> Row | None:
        """A row an earlier list read (the previous keystroke's): expanded for nothing."""
        return tree.memo([tokens], [key(tokens)], digest)[0] if tree.keeps(tokens) else None

    def shown(node: tuple[int, ...]) -> str:
        read, tokens = split(node)
        text = read.shown(list(tokens))
        return text.lower() if lower else text  # what a casing adds, in the user's case

    def spelled(node: tuple[int, ...]) -> bool:
        read, tokens = split(node)
        return read.healing is None or not read.healing.remaining(list(tokens))

    written = canonical(lm)
    result = best_first(
        Space(read=forward, shown=shown, spelled=spelled, ends_text=lm.eos_ids, bound=SUGGEST_EXPANSIONS, batch=batch,
             room=min(read.max_new + len(path) for read, path in zip(spellings, paths)), known=known,
             written=lambda node, whole: written(split(node)[1]) if whole else written.may_grow(split(node)[1])),
        roots, prefix, style, n, words, reads)
    for suggestion in result:
        suggestion.tokens = list(split(tuple(suggestion.tokens))[1])  # after the prompt, as with one casing
    bounds = ([f"{reads} rows read"] if reads is not None else []) + [f"{SUGGEST_CHILDREN} tokens a step",
                                                                      f"{SUGGEST_EXPANSIONS} prefixes"]
    result.note = (f"The search stopped at its bound ({', '.join(bounds)}): a suggestion it left out could be "
                   "likelier than the last ones shown.")
    return result
