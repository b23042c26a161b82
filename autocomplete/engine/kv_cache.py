"""The keys and values our compact forwards (autocomplete.engine.gpt2, .llama) cache per layer."""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values of every layer in one tensor, grown by doubling: appending a token is a copy into place,
    and a copy of the cache (one per suggestion being explored) holds only what is filled.
    shared ([layers, 2, 1, heads, n, head_dim]), when set: keys and values before the cache's own that every row
    reads, kept once rather than copied per row (the suggestion search's prompt)."""

    shared: torch.Tensor | None = None

    def __init__(self, n_layer: int, batch: int, n_head: int, capacity: int, head_dim: int, dtype, device):
        self.kv = torch.empty((n_layer, 2, batch, n_head, capacity, head_dim), dtype=dtype, device=device)
        self.length = 0

    def reserve(self, needed: int, limit: int) -> None:
        if needed > self.kv.shape[4]:
            grown = self.kv.new_empty((*self.kv.shape[:4], min(limit, max(needed, 2 * self.kv.shape[4])),
                                       self.kv.shape[5]))
            grown[:, :, :, :, :self.length] = self.kv[:, :, :, :, :self.length]
            self.kv = grown

    def batch_repeat_interleave(self, repeats: int, room: int = 16) -> None:
        """Each row `repeats` times, with `room` free positions after what is filled: the tokens about to come
        then need no second copy to grow into."""
        L, two, B, H, _, D = self.kv.shape
        grown = self.kv.new_empty((L, two, B * repeats, H, self.length + room, D))
        grown.view(L, two, B, repeats, H, self.length + room, D)[..., :self.length, :] = \
            self.kv[:, :, :, None, :, :self.length]
        self.kv = grown

    def with_room(self, room: int) -> "KVCache":
        """A copy with `room` free positions after what is filled: a completion that knows how many tokens it adds
        (the prompt's and the most it generates) copies the frame's keys and values once, not again to grow."""
        copy = KVCache.__new__(KVCache)
        copy.kv = self.kv.new_empty((*self.kv.shape[:4], self.length + room, self.kv.shape[5]))
        copy.kv[:, :, :, :, :self.length] = self.kv[:, :, :, :, :self.length]
        copy.length = self.length
        return copy

    def __deepcopy__(self, memo) -> "KVCache":
        return self.with_room(0)
