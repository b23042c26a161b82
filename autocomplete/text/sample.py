"""The next-token loop, over any engine: read the prompt, reshape the last logits, pick a token, append it, repeat.

numpy throughout (a cold call imports no torch). tests/text/test_sample.py checks the warpers against
transformers' TopKLogitsWarper and TopPLogitsWarper, and the loop against transformers' generate().
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np

from autocomplete.text.heal import restrict


def warp(logits: np.ndarray, temperature: float, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """logits / T, then keep the top k, then the smallest set holding probability top_p (softmax follows).
    Rows along the last axis. T = 0 is not a temperature here: greedy picks the argmax instead."""
    logits = np.asarray(logits, dtype=np.float32)
    if temperature != 1.0:
        # Shifted first, so the largest is 0: a tiny T (1e-39) sends the rest to -inf, not the top to inf (NaN).
        # Divided in float64: a T below float32's range is still not zero there.
        with np.errstate(over="ignore"):
            shifted = (logits - logits.max(axis=-1, keepdims=True)).astype(np.float64)
            logits = (shifted / temperature).astype(np.float32)
    if top_k > 0:
        logits = keep_top_k(logits, top_k)
    if top_p < 1.0:
        logits = keep_top_p(logits, top_p)
    return logits


def keep_top_k(logits: np.ndarray, k: int) -> np.ndarray:
    """The k highest logits (and any tied with the k-th) stay; the rest go to -inf."""
    rows = logits.reshape(-1, logits.shape[-1])
    kth = np.array([kth_largest(row, k) for row in rows], dtype=logits.dtype).reshape(*logits.shape[:-1], 1)
    return np.where(logits < kth, -np.inf, logits).astype(np.float32)


# A suggestion search bounds hundreds of rows a keystroke, and np.partition of a whole vocabulary a row was a large
# part of its own time: the k-th largest is found among the few blocks of _BLOCK whose maxima are the k largest
# (tests/text/test_sample.py holds it to np.partition).
_BLOCK = 64


def kth_largest(row: np.ndarray, k: int) -> float:
    """The k-th largest value of a 1-D row (its smallest, for k at or past its size)."""
    k = max(1, min(k, row.size))
    whole = row.size - row.size % _BLOCK
    if whole // _BLOCK > 4 * k:
        # The values at least some bound hold the row's k-th largest as theirs whenever k of them pass it; the k-th
        # largest of the blocks' maxima always lets k pass (k maxima are values), NaN aside
        maxima = row[:whole].reshape(-1, _BLOCK).max(axis=1)
        candidates = row[row >= np.partition(maxima, -k)[-k]]
        row = candidates if candidates.size >= k else row
    return float(np.partition(row, -k)[-k])


def keep_top_p(logits: np.ndarray, p: float) -> np.ndarray:
    """The likeliest tokens that together hold probability p stay (at least one); the rest go to -inf. Counted from
    the unlikely end: a token goes if it and everything less likely hold at most 1 - p."""
    rows = logits.reshape(-1, logits.shape[-1])
    return np.stack([_top_p_row(row, p) for row in rows]).reshape(logits.shape)


# A stable sort of a 49k vocabulary took 8.5 ms a row (the AMX Xeon): a suggestion search warps hundreds of rows.
# The cut is nearly always among the likeliest few hundred, so only those are sorted (all that top-k left, if
# fewer) and the rest summed; where the cut falls below them (or on a tie with the rest), the whole row is sorted.
_HEAD = 1024


def _top_p_row(row: np.ndarray, p: float) -> np.ndarray:
    finite = np.flatnonzero(row > -np.inf)
    if 0 < finite.size and (finite.size < row.size or row.size > 2 * _HEAD):
        head = finite
        if finite.size > 2 * _HEAD:  # by index after the partition: ties stay in order
            head = np.sort(finite[np.argpartition(row[finite], finite.size - _HEAD)[finite.size - _HEAD:]])
        order = head[np.argsort(row[head], kind="stable")]
        rest = np.ones(row.size, dtype=bool)
        rest[head] = False
        probs = softmax(row)
        drop = np.cumsum(probs[order]) + probs[rest].sum() <= 1 - p
        drop[-1] = False
        kept = order[np.argmin(drop)]
        if head.size == finite.size or (drop[0] and row[kept] > row[rest].max()):  # the cut inside the head
            out = np.full_like(row, -np.inf)
            out[order[~drop]] = row[order[~drop]]
            return out
    order = np.argsort(row, kind="stable")
    ascending = row[order]
    drop = np.cumsum(softmax(ascending)) <= 1 - p
    drop[-1] = False
    out = row.copy()
    out[order] = np.where(drop, -np.inf, ascending)
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Along the last axis, in float32; -inf logits get probability 0."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted, dtype=np.float32)
    return e / e.sum(axis=-1, keepdims=True)


def probabilities(logits: np.ndarray, temperature: float, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """The distribution the sampler draws from: softmax of the warped logits (one-hot at temperature 0)."""
    logits = np.asarray(logits, dtype=np.float32)
    if temperature == 0:
        hot = np.zeros(logits.shape, dtype=np.float32)
        np.put_along_axis(hot, logits.argmax(axis=-1)[..., None], 1.0, axis=-1)
        return hot
    return softmax(warp(logits, temperature, top_k, top_p))


def new_seed() -> int:
    """A random seed for a run not given one, 31-bit: servers over --api take a signed 32-bit int."""
    return int.from_bytes(os.urandom(4), "little") >> 1


def draw(probs: np.ndarray, rng: np.random.Generator) -> int:
    """One token drawn from probs [vocab] (inverse CDF: one uniform number per token, whatever the vocabulary)."""
    cumulative = np.cumsum(probs, dtype=np.float64)
    return int(min(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"), len(probs) - 1))


def generate(
    engine,
    prompt_ids: list[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    eos_ids: frozenset[int] = frozenset(),
    rng: np.random.Generator | None = None,
    observe: Callable[[np.ndarray, int, np.ndarray | None], None] | None = None,
    after=None,
    allowed: Callable[[list[int]], np.ndarray | None] | None = None,
) -> Iterator[int]:
    """Yield new token ids one at a time. temperature 0 is greedy (argmax).
    after: the engine's state of what comes before prompt_ids (a hidden frame), left as it is.
    allowed(new ids so far): the token ids the next one may be, or None for any (token healing).
    observe(logits, token, allowed), if given, sees each step's logits (tokens not allowed at -inf), the token
    picked and what was allowed."""
    if max_new_tokens <= 0:
        return
    rng = rng if rng is not None else np.random.default_rng()
    new: list[int] = []
    logits, state = engine.read(prompt_ids, after, room=max_new_tokens)
    while True:
        only = allowed(new) if allowed else None
        logits = restrict(logits, only)
        if temperature == 0:
            token = int(logits.argmax())
        else:
            token = draw(probabilities(logits, temperature, top_k, top_p), rng)
        new.append(token)
        if observe is not None:
            observe(logits, token, only)
        yield token
        if token in eos_ids or len(new) >= max_new_tokens:
            return
        logits = engine.extend(state, token)
