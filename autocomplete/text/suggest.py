"""Search-box suggestions: the N likeliest distinct completions of a prefix.

In the query style a suggestion is a whole query: P(its tokens) x P(the query ends there: a line break or the end
of the text). In the text style it ends at a word boundary: P(tokens) x P(next token starts a new word or ends the
text). Either way the probability is the chance that the model, sampling under the current temperature / top-k /
top-p, writes exactly those tokens, with the first ones spelling the word being typed again (token healing).

Best-first search over the token tree finds them exactly. A continuation is never likelier than its prefix, so
once the N-th best suggestion found beats every prefix still waiting, nothing left can overtake it. Each step
expands a batch of the likeliest waiting prefixes in one forward pass that shares the prompt's KV cache.
"""

from __future__ import annotations

import copy
import heapq
import itertools
from collections.abc import Callable

import torch

from autocomplete.engine.generate import logits_warpers
from autocomplete.engine.gpt2 import KVCache
from autocomplete.engine.models import LoadedModel
from autocomplete.settings import Settings
from autocomplete.text.heal import restrict
from autocomplete.text.prompt import prepare, vocabulary
from autocomplete.text.suggestions import Found, Suggestion, normalise  # noqa: F401 (normalise: used by tests too)

# Children kept per prefix: a bound on work with a 50k vocabulary; top-k below this makes the search exact.
MAX_CHILDREN = 64
MAX_EXPANSIONS = 400
# KV-cache rows (prompt tokens x batch) copied per step: bounds memory on a long piped prompt.
CACHE_BUDGET = 8192


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
        firsts = [piece[:4].decode("utf-8", errors="replace")[:1] for piece in vocabulary(lm).pieces[:size]]
        lm._word_starts = _mask(lm, size, [bool(c) and not c.isalnum() and c != "\ufffd" for c in firsts])
    return lm._word_starts


def line_ends(lm: LoadedModel, size: int) -> torch.Tensor:
    """A mask over the vocabulary: tokens that end a query (a line break, or the end of the text)."""
    if getattr(lm, "_line_ends", None) is None or lm._line_ends.numel() != size:
        lm._line_ends = _mask(lm, size, [piece[:1] in (b"\n", b"\r") for piece in vocabulary(lm).pieces[:size]])
    return lm._line_ends


def _mask(lm: LoadedModel, size: int, flags: list[bool]) -> torch.Tensor:
    mask = torch.zeros(size, dtype=torch.bool)
    mask[: len(flags)] = torch.tensor(flags, dtype=torch.bool)
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
    model = lm.model
    read = prepare(lm, prefix, settings.style, settings.examples, words * 8, quiet=True)
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([read.ids], device=model.device), cache=read.cache(), use_cache=True,
                    logits_to_keep=1)
    prompt_cache = out.cache
    root = next_token_probs(restrict(out.logits[:, -1].float(), read.allowed([])), settings)[0]
    ends = (line_ends if read.style == "query" else word_starts)(lm, root.shape[-1]).to(root.device)
    context = len(read.ids) + (len(read.frame.ids) if read.frame else 0)
    batch = max(1, min(batch, CACHE_BUDGET // max(1, context)))

    found: dict[str, Suggestion] = {}
    left_out = 0.0  # the most a token beyond MAX_CHILDREN could have had
    frontier: list[tuple[float, int, tuple[int, ...]]] = []  # (-probability, tiebreak, tokens)
    tiebreak = itertools.count()

    def bar() -> float:
        """What a new suggestion must beat: the N-th best so far."""
        if len(found) < n:
            return 0.0
        return sorted((s.probability for s in found.values()), reverse=True)[n - 1]

    def expand(tokens: tuple[int, ...], p: float, probs: torch.Tensor) -> None:
        text = read.shown(list(tokens))
        spelled = read.healing is None or not read.healing.remaining(list(tokens))
        if spelled and any(ch.isalnum() for ch in text) and not text.endswith("\ufffd"):
            score = p * float(probs[ends].sum())
            key = normalise(text)
            if score > 0 and (key not in found or score > found[key].probability):
                found[key] = Suggestion(text, score, list(tokens))
        nonlocal left_out
        top = probs.topk(min(MAX_CHILDREN, probs.shape[-1]))
        threshold = bar()
        if top.values.numel() < probs.shape[-1]:
            left_out = max(left_out, p * float(top.values[-1]))  # what a token past the 64th could still have
        for q, token in zip(top.values.tolist(), top.indices.tolist()):
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
    tree = Tree(prompt_cache) if isinstance(prompt_cache, KVCache) else None
    expansions = 0
    while frontier and expansions < MAX_EXPANSIONS:
        if -frontier[0][0] <= bar():
            break  # nothing waiting can beat the N-th best: the answer is exact
        check()
        nodes = [heapq.heappop(frontier) for _ in range(min(batch, len(frontier)))]
        continuations = [t for _, _, t in nodes]
        logits = tree.next_logits(model, continuations) if tree else _next_logits(model, prompt_cache, continuations)
        allowed = [read.allowed(list(t)) for t in continuations]
        if any(a is not None for a in allowed):
            logits = torch.stack([restrict(row, a) for row, a in zip(logits, allowed)])
        for (neg_p, _, tokens), probs in zip(nodes, next_token_probs(logits, settings)):
            expand(tokens, -neg_p, probs)
        expansions += len(nodes)
    result = Found(sorted(found.values(), key=lambda s: -s.probability)[:n])
    result.exact = max(left_out, -frontier[0][0] if frontier else 0.0) <= bar()
    return result


class Tree:
    """The keys and values of every prefix the search has expanded, for our compact models: a new prefix is its
    parent plus one token, so a forward reads one token per row instead of the whole continuation again."""

    def __init__(self, prompt_cache: KVCache):
        self.prompt = prompt_cache  # the frame and the prompt, shared by every row
        self.kv: dict[tuple[int, ...], torch.Tensor] = {(): prompt_cache.kv[:, :, :, :, :0]}  # [layers, 2, 1, H, n, D]

    @torch.inference_mode()
    def next_logits(self, model, continuations: list[tuple[int, ...]]) -> torch.Tensor:
        n = self.prompt.length
        own = [self.kv[c[:-1]] for c in continuations]  # the parents' keys and values after the prompt
        width = max(kv.shape[4] for kv in own)
        layers, two, _, heads, _, dim = self.prompt.kv.shape
        cache = KVCache.__new__(KVCache)
        cache.shared = self.prompt.kv[:, :, :, :, :n]  # read by every row, never copied
        cache.kv = self.prompt.kv.new_zeros((layers, two, len(continuations), heads, width + 1, dim))
        mask = torch.zeros(len(continuations), 1, 1, width + 1, dtype=torch.bool, device=cache.kv.device)
        mask[..., -1] = True  # the row's new token itself
        for row, kv in enumerate(own):
            cache.kv[:, :, row:row + 1, :, :kv.shape[4]] = kv
            mask[row, ..., :kv.shape[4]] = True  # padding after a shorter parent is never seen
        cache.length = width
        tokens = torch.tensor([[c[-1]] for c in continuations], device=cache.kv.device)
        positions = torch.tensor([[n + len(c) - 1] for c in continuations], device=cache.kv.device)
        logits = model(input_ids=tokens, cache=cache, positions=positions, attn_mask=mask).logits[:, -1]
        for row, (c, kv) in enumerate(zip(continuations, own)):
            self.kv[c] = torch.cat((kv, cache.kv[:, :, row:row + 1, :, width:width + 1]), dim=4)
        return logits.float()


@torch.inference_mode()
def _next_logits(model, prompt_cache, continuations: list[tuple[int, ...]]) -> torch.Tensor:
    """For other models (transformers' modeling): one forward for the whole batch, each continuation after the
    shared prompt cache, right-padded (causal attention never lets a real token see the padding after it), read at
    its own last position."""
    lengths = [len(c) for c in continuations]
    width = max(lengths)
    rows = torch.tensor([list(c) + [c[-1]] * (width - len(c)) for c in continuations], device=model.device)
    cache = copy.deepcopy(prompt_cache)
    cache.batch_repeat_interleave(len(continuations))
    # The output head (a fifth of a small model's weights) only at the positions some row ends at.
    ends = sorted(set(lengths))
    logits = model(input_ids=rows, cache=cache, use_cache=True,
                   logits_to_keep=torch.tensor([n - 1 for n in ends], device=model.device)).logits
    return logits[torch.arange(len(continuations)), torch.tensor([ends.index(n) for n in lengths])].float()
