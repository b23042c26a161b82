"""Search-box suggestions: the N likeliest distinct completions of a prefix.

In the query style a suggestion is a whole query: P(its tokens) x P(the query ends there: a line break or the end
of the text). In the text style it ends at a word boundary: P(tokens) x P(next token starts a new word or ends the
text). Either way the probability is the chance that the model, sampling under the current temperature / top-k /
top-p, writes exactly those tokens once the first ones have spelled the word being typed again, in any of the ways
the vocabulary can spell it (whole-word healing; while they spell it, the model's own odds count: which word the
letters become is the model's to say); the tokenizations found of one suggestion (and its case and spacing
variants) are summed. A suggestion that says a word twice back to back is never listed, nor followed
(autocomplete.text.suggestions.repeats).

Best-first search over the token tree. A continuation is never likelier than its prefix, so once the N-th best
suggestion found beats every prefix still waiting, no tokenization left can overtake it (a suggestion's other
tokenizations still waiting, each below that bar, are not added in). Each step expands a batch of the likeliest
waiting prefixes in one forward pass that shares the prompt's KV cache.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

import numpy as np

from autocomplete.engine.models import LoadedModel
from autocomplete.settings import Settings
from autocomplete.text.heal import restrict
from autocomplete.text.prompt import prepare, vocabulary
from autocomplete.text.sample import probabilities
from autocomplete.text.suggestions import Found, Tally, normalise, repeats  # noqa: F401 (normalise: for the tests)

# Children kept per prefix: a bound on work with a 50k vocabulary; top-k below this makes the search exact.
MAX_CHILDREN = 64
MAX_EXPANSIONS = 400
# KV-cache rows (prompt tokens x batch) copied per step: bounds memory on a long piped prompt.
CACHE_BUDGET = 8192


def next_token_probs(logits: np.ndarray, settings: Settings) -> np.ndarray:
    """The distribution the sampler draws from: softmax of the warped logits (one-hot at temperature 0).
    logits: [batch, vocab]."""
    return probabilities(logits, settings.temperature, settings.top_k, settings.top_p)


def word_starts(lm: LoadedModel, size: int) -> np.ndarray:
    """A mask over the vocabulary: tokens that begin a new word (space, punctuation) or end the text."""
    if getattr(lm, "_word_starts", None) is None or lm._word_starts.size != size:
        firsts = [piece[:4].decode("utf-8", errors="replace")[:1] for piece in vocabulary(lm).pieces[:size]]
        lm._word_starts = _mask(lm, size, [bool(c) and not c.isalnum() and c != "\ufffd" for c in firsts])
    return lm._word_starts


def line_ends(lm: LoadedModel, size: int) -> np.ndarray:
    """A mask over the vocabulary: tokens that end a query (a line break, or the end of the text)."""
    if getattr(lm, "_line_ends", None) is None or lm._line_ends.size != size:
        lm._line_ends = _mask(lm, size, [piece[:1] in (b"\n", b"\r") for piece in vocabulary(lm).pieces[:size]])
    return lm._line_ends


def _mask(lm: LoadedModel, size: int, flags: list[bool]) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[: len(flags)] = flags
    mask[[eos for eos in lm.eos_ids if eos < size]] = True  # the end of the text ends a word and a query too
    return mask


def suggest(lm: LoadedModel, prefix: str, settings: Settings, n: int = 5, words: int = 3,
            batch: int = 4, check: Callable[[], None] = lambda: None) -> Found:
    """The n likeliest suggestions. In the query style a suggestion is a whole query: its probability is that of
    its tokens and then the end of the query. In the text style it ends at a word boundary.
    batch: prefixes expanded per forward. Small batches waste less: a forward costs about its rows x their
    lengths, and a wide batch mostly expands prefixes that turn out not to matter (measured on SmolLM2: 4 rows
    took half the time of 16, the same suggestions).
    check: called before every forward; what it raises ends the search (the warm server's client hung up)."""
    read = prepare(lm, prefix, settings.style, settings.examples, words * 8, quiet=True)
    root_read = read.root(lm)  # remembered: the next keystroke's search finds this one's rows read
    logits = root_read.logits
    # The typed letters spelled again in every way the vocabulary can (whole-word healing, as autocomplete.text.word
    # does for one word): "new yo" finds "york" as ` yo` + `rk` too, a tokenization token healing never tries.
    # While they are spelled, the model's own odds: the letters are given, and which word they become is the
    # model's to say. Under the sampler's, T 0.7 and top-p 0.95 over the tokens that fit gave " you" all of "new yo"
    # and left " York" out. Our prefixes' right word in the top 5: 1-2 letters typed 86% -> 98%, 3+ letters 95%.
    spelling = Settings(temperature=1.0, top_k=0, top_p=1.0)
    every = read.healing.every if read.healing else (lambda generated: None)
    root = next_token_probs(restrict(logits, every([])), spelling if read.healing else settings)
    ends = (line_ends if read.style == "query" else word_starts)(lm, root.shape[-1])
    context = len(read.ids) + (len(read.frame.ids) if read.frame else 0)
    batch = max(1, min(batch, CACHE_BUDGET // max(1, context)))

    found = Tally()
    left_out = 0.0  # the most a token beyond MAX_CHILDREN could have had
    frontier: list[tuple[float, int, tuple[int, ...]]] = []  # (-probability, tiebreak, tokens)
    tiebreak = itertools.count()

    def bar() -> float:
        return found.bar(n)

    def expand(tokens: tuple[int, ...], p: float, probs: np.ndarray) -> None:
        text = read.shown(list(tokens))
        spelled = read.healing is None or not read.healing.remaining(list(tokens))
        # U+FFFD is bytes that are no character: not a query anyone types. At the end it may be a character's
        # first bytes (followed, not suggested); before the end it never goes away (not followed either).
        if spelled and any(ch.isalnum() for ch in text) and "\ufffd" not in text and not repeats(prefix, text):
            score = p * float(probs[ends].sum())
            if score > 0:
                found.add(text, score, list(tokens))
        if "\ufffd" in text.rstrip("\ufffd") or repeats(prefix, text, growing=True):
            return  # bytes that are no character, or a word said twice: whatever follows stays so
        nonlocal left_out
        # Only the tokens top-k and top-p left (numpy's partition over the ~50,000 zeros they leave, all ties, takes
        # 6 ms a row against 0.4 ms over distinct values: on the starter it was a third of a suggestion list).
        candidates = np.flatnonzero(probs)
        k = min(MAX_CHILDREN, candidates.size)
        top = candidates[np.argpartition(probs[candidates], -k)[-k:]] if k < candidates.size else candidates
        top = top[np.argsort(-probs[top], kind="stable")]
        values = probs[top]
        threshold = bar()
        if k < candidates.size:
            left_out = max(left_out, p * float(values[-1]))  # what a token past the 64th could still have
        for q, token in zip(values.tolist(), top.tolist()):
            if p * q <= threshold:
                break  # sorted: the rest are smaller still
            if token in lm.eos_ids:
                continue  # the end of the text was counted as a word boundary above
            child = tokens + (token,)
            text = read.shown(list(child))
            # one line, at most `words` words, and within the context window (a long word can be many tokens)
            if "\n" not in text and len(text.split()) <= words and len(child) <= read.max_new:
                heapq.heappush(frontier, (-p * q, next(tiebreak), child))

    expand((), 1.0, root)
    tree = root_read.tree
    expansions = 0
    while frontier and expansions < MAX_EXPANSIONS:
        if -frontier[0][0] <= bar():
            break  # nothing waiting can beat the N-th best: the answer is exact
        check()
        nodes = [heapq.heappop(frontier) for _ in range(min(batch, len(frontier)))]
        continuations = [t for _, _, t in nodes]
        logits = tree.next_logits(continuations)
        allowed = [every(list(t)) for t in continuations]
        if any(a is not None for a in allowed):
            logits = np.stack([restrict(row, a) for row, a in zip(logits, allowed)])
        rows = [next_token_probs(row[None], settings if a is None else spelling)[0] for row, a in zip(logits, allowed)]
        for (neg_p, _, tokens), probs in zip(nodes, rows):
            expand(tokens, -neg_p, probs)
        expansions += len(nodes)
    result = found.best(n)
    result.exact = max(left_out, -frontier[0][0] if frontier else 0.0) <= bar()
    return result
