"""Search-box suggestions: the N likeliest distinct continuations of a prefix that end at a word boundary.

A suggestion's probability is the chance that the model, sampling under the current temperature / top-k / top-p,
writes exactly its tokens and then ends the word: P(tokens) x P(next token starts a new word or ends the text).

Best-first search over the token tree finds them exactly. A continuation is never likelier than its prefix, so
once the N-th best suggestion found beats every prefix still waiting, nothing left can overtake it. Each step
expands a batch of the likeliest waiting prefixes in one forward pass that shares the prompt's KV cache.
"""

from __future__ import annotations

import copy
import heapq
import itertools
from dataclasses import dataclass

import torch

from autocomplete.complete import fit_to_context
from autocomplete.generate import logits_warpers
from autocomplete.models import LoadedModel
from autocomplete.settings import Settings

# Children kept per prefix: a bound on work with a 50k vocabulary; top-k below this makes the search exact.
MAX_CHILDREN = 64
MAX_EXPANSIONS = 400
# KV-cache rows (prompt tokens x batch) copied per step: bounds memory on a long piped prompt.
CACHE_BUDGET = 8192


@dataclass
class Suggestion:
    completion: str  # the text after the prefix
    probability: float
    tokens: list[int]


def normalise(text: str) -> str:
    """Suggestions that differ only in case or spacing are one suggestion."""
    return " ".join(text.lower().split())


def next_token_probs(logits: torch.Tensor, settings: Settings) -> torch.Tensor:
    """The distribution the sampler draws from: softmax of the warped logits (one-hot at temperature 0).
    logits: [batch, vocab]."""
    logits = logits.float()
    if settings.temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    warp = logits_warpers(settings.temperature, settings.top_k, settings.top_p)
    return torch.softmax(warp(None, logits), dim=-1)


def word_starts(lm: LoadedModel, size: int) -> torch.Tensor:
    """A mask over the vocabulary: tokens that begin a new word (space, punctuation) or end the text."""
    if getattr(lm, "_word_starts", None) is None or lm._word_starts.numel() != size:
        tokenizer = lm.tokenizer
        n = min(size, len(tokenizer))
        texts = tokenizer.batch_decode([[i] for i in range(n)], clean_up_tokenization_spaces=False)
        raw = tokenizer.convert_ids_to_tokens(list(range(n)))
        mask = torch.zeros(size, dtype=torch.bool)
        for i, (text, piece) in enumerate(zip(texts, raw)):
            # "Ġ" (byte-level BPE) and "▁" (SentencePiece) mark a leading space in the raw token
            mask[i] = bool(text) and not text[0].isalnum() and text[0] != "\ufffd" or str(piece)[:1] in ("Ġ", "▁")
        for eos in lm.eos_ids:
            if eos < size:
                mask[eos] = True
        lm._word_starts = mask
    return lm._word_starts


def suggest(lm: LoadedModel, prefix: str, settings: Settings, n: int = 5, words: int = 3,
            batch: int = 16) -> list[Suggestion]:
    model = lm.model
    ids, _ = fit_to_context(lm.encode(prefix), lm.context_length, words * 8, lm.tokenizer.bos_token_id)
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ids], device=model.device), use_cache=True, logits_to_keep=1)
    prompt_cache, root = out.cache, next_token_probs(out.logits[:, -1], settings)[0]
    ends_word = word_starts(lm, root.shape[-1]).to(root.device)
    batch = max(1, min(batch, CACHE_BUDGET // max(1, len(ids))))

    found: dict[str, Suggestion] = {}
    frontier: list[tuple[float, int, tuple[int, ...]]] = []  # (-probability, tiebreak, tokens)
    tiebreak = itertools.count()

    def bar() -> float:
        """What a new suggestion must beat: the N-th best so far."""
        if len(found) < n:
            return 0.0
        return sorted((s.probability for s in found.values()), reverse=True)[n - 1]

    def expand(tokens: tuple[int, ...], p: float, probs: torch.Tensor) -> None:
        text = lm.decode(list(tokens))
        if any(ch.isalnum() for ch in text) and not text.endswith("\ufffd"):
            score = p * float(probs[ends_word].sum())
            key = normalise(text)
            if score > 0 and (key not in found or score > found[key].probability):
                found[key] = Suggestion(text, score, list(tokens))
        top = probs.topk(min(MAX_CHILDREN, probs.shape[-1]))
        threshold = bar()
        for q, token in zip(top.values.tolist(), top.indices.tolist()):
            if p * q <= threshold:
                break  # sorted: the rest are smaller still
            if token in lm.eos_ids:
                continue  # the end of the text was counted as a word boundary above
            child = tokens + (token,)
            text = lm.decode(list(child))
            if "\n" not in text and len(text.split()) <= words:  # one line, at most `words` words
                heapq.heappush(frontier, (-p * q, next(tiebreak), child))

    expand((), 1.0, root)
    expansions = 0
    while frontier and expansions < MAX_EXPANSIONS:
        if -frontier[0][0] <= bar():
            break  # nothing waiting can beat the N-th best: the answer is exact
        nodes = [heapq.heappop(frontier) for _ in range(min(batch, len(frontier)))]
        for (neg_p, _, tokens), probs in zip(nodes, _next_probs(model, prompt_cache, [t for _, _, t in nodes],
                                                                 settings)):
            expand(tokens, -neg_p, probs)
        expansions += len(nodes)
    return sorted(found.values(), key=lambda s: -s.probability)[:n]


@torch.inference_mode()
def _next_probs(model, prompt_cache, continuations: list[tuple[int, ...]], settings: Settings) -> torch.Tensor:
    """One forward for the whole batch: each continuation after the shared prompt cache, right-padded (causal
    attention never lets a real token see the padding after it), read at its own last position."""
    lengths = [len(c) for c in continuations]
    width = max(lengths)
    rows = torch.tensor([list(c) + [c[-1]] * (width - len(c)) for c in continuations], device=model.device)
    cache = copy.deepcopy(prompt_cache)
    cache.batch_repeat_interleave(len(continuations))
    logits = model(input_ids=rows, cache=cache, use_cache=True).logits
    last = logits[torch.arange(len(continuations)), torch.tensor(lengths) - 1]
    return next_token_probs(last, settings)
