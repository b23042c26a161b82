"""The next-token loop: forward with a KV cache, reshape the last logits, pick a token, append it, repeat."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from autocomplete.text.heal import restrict


def logits_warpers(temperature: float, top_k: int, top_p: float) -> Callable[[torch.Tensor | None, torch.Tensor], torch.Tensor]:
    """logits / T, then keep the top k, then the smallest set holding probability top_p (softmax follows).
    Written here rather than imported from transformers (0.5-1 s of a cold shell call); tests/engine/test_generate.py
    checks them against transformers' TopKLogitsWarper and TopPLogitsWarper."""

    def warp(input_ids: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        if temperature != 1.0:
            # Shifted first, so the largest is 0: a tiny T (1e-39) sends the rest to -inf, not the top to inf (NaN).
            logits = (logits - logits.amax(dim=-1, keepdim=True)) / temperature
        if top_k > 0:
            logits = keep_top_k(logits, top_k)
        if top_p < 1.0:
            logits = keep_top_p(logits, top_p)
        return logits

    return warp


def keep_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """The k highest logits (and any tied with the k-th) stay; the rest go to -inf."""
    kth = logits.topk(min(k, logits.shape[-1]), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def keep_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """The likeliest tokens that together hold probability p stay (at least one); the rest go to -inf. Counted from
    the unlikely end: a token goes if it and everything less likely hold at most 1 - p."""
    ascending, order = logits.sort(dim=-1)
    drop = ascending.softmax(dim=-1).cumsum(dim=-1) <= 1 - p
    drop[..., -1] = False
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


@torch.inference_mode()
def generate(
    model,
    prompt_ids: list[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    eos_ids: frozenset[int] = frozenset(),
    generator: torch.Generator | None = None,
    observe: Callable[[torch.Tensor, int, torch.Tensor | None], None] | None = None,
    cache=None,
    allowed: Callable[[list[int]], torch.Tensor | None] | None = None,
) -> Iterator[int]:
    """Yield new token ids one at a time. temperature 0 is greedy (argmax).
    cache: the KV cache of what comes before prompt_ids (a hidden frame), extended in place.
    allowed(new ids so far): the token ids the next one may be, or None for any (token healing).
    observe(logits, token, allowed), if given, sees each step's last-position logits (tokens not allowed at -inf),
    the token picked and what was allowed."""
    warp = logits_warpers(temperature, top_k, top_p) if temperature > 0 else None
    x, new = torch.tensor([prompt_ids], dtype=torch.long, device=model.device), []
    for _ in range(max_new_tokens):
        # logits_to_keep=1: only the last position is needed, and a long prompt's full logits cost gigabytes.
        out = model(input_ids=x, cache=cache, use_cache=True, logits_to_keep=1)
        cache = out.cache
        only = allowed(new) if allowed else None
        logits = restrict(out.logits[:, -1, :].float(), only)
        if warp is None:
            next_id = logits.argmax(dim=-1, keepdim=True)
        else:
            probs = torch.softmax(warp(None, logits), dim=-1)  # top-k / top-p don't read the ids so far
            next_id = torch.multinomial(probs, num_samples=1, generator=generator)
        x = next_id
        token = next_id.item()
        new.append(token)
        if observe is not None:
            observe(logits[0], token, only)
        yield token
        if token in eos_ids:
            return
