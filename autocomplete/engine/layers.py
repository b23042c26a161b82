"""What both compact forwards (autocomplete.engine.gpt2, .llama) are built of: attention over the cache, its
mask, the layers left uninitialised for the checkpoint to fill, and what a forward returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from autocomplete.engine.kv_cache import KVCache


@dataclass
class Output:
    logits: torch.Tensor
    cache: KVCache


def attend(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None,
           shared: torch.Tensor | None = None, scale: float | None = None) -> torch.Tensor:
    """Scaled dot-product attention of q [B, heads, T, D] over keys and values [B, kv_heads, S, D]; each key/value
    head serves heads / kv_heads query heads (grouped-query attention). shared [2, 1, kv_heads, n, D]: keys and
    values before those, the same for every row, read without a copy per row (T = 1 only, as the search needs);
    mask then covers the row's own keys only. scale: what q·k is multiplied by, 1/sqrt(D) unless given (1 where the
    weights made q that much smaller)."""
    if shared is None:
        causal = mask is None and q.shape[2] > 1
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, is_causal=causal, enable_gqa=True,
                                              scale=scale)
    B, heads, T, D = q.shape
    kv_heads = keys.shape[1]
    groups = heads // kv_heads
    assert T == 1, "shared keys and values are read one new token at a time"
    g = q.reshape(B, kv_heads, groups * T, D)  # query heads grouped by their key/value head (then by position)
    if scale != 1.0:
        g = g * (D ** -0.5 if scale is None else scale)
    own = g @ keys.transpose(-1, -2)
    if mask is not None:
        own = own.masked_fill(~mask, float("-inf"))
    weights = torch.cat((g @ shared[0].transpose(-1, -2), own), dim=-1).softmax(dim=-1)
    n = shared.shape[3]
    y = weights[..., :n] @ shared[1] + weights[..., n:] @ values
    return y.reshape(B, heads, T, D)


def causal_mask(start: int, T: int, device) -> torch.Tensor | None:
    """New tokens after `start` cached ones: each sees the cache and the new ones before it. None where the
    attention needs no mask (one new token) or only its own causal one (nothing cached)."""
    if start == 0 or T == 1:
        return None
    return torch.ones(T, start + T, dtype=torch.bool, device=device).tril(diagonal=start)


def positions_to_keep(x: torch.Tensor, logits_to_keep: int | torch.Tensor) -> torch.Tensor:
    """The positions whose logits are wanted: the last n (0: all), or those a tensor lists."""
    if isinstance(logits_to_keep, torch.Tensor):
        return x[:, logits_to_keep]
    return x[:, -logits_to_keep:] if logits_to_keep else x


def linear(n_in: int, n_out: int, bias: bool = True) -> nn.Linear:
    """An nn.Linear (that exact type, so int8 quantization recognises it) left uninitialised: the checkpoint
    provides its weights, and random initialisation costs most of a second at GPT-2 sizes."""
    layer = nn.Linear.__new__(nn.Linear)
    nn.Module.__init__(layer)
    layer.in_features, layer.out_features = n_in, n_out
    layer.weight = nn.Parameter(torch.empty(n_out, n_in), requires_grad=False)
    layer.register_parameter("bias", nn.Parameter(torch.empty(n_out), requires_grad=False) if bias else None)
    return layer


def embedding(n: int, dim: int) -> nn.Embedding:
    return nn.Embedding(n, dim, _weight=torch.empty(n, dim), _freeze=True)  # given a weight: no initialisation
