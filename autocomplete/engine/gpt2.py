"""A compact GPT-2 forward pass in plain torch, loaded straight from safetensors.

Importing transformers' modeling code costs ~3 s of every shell call; GPT-2 is small enough to write out. The
interface is the slice of transformers' one that autocomplete uses: model(input_ids=, cache=, logits_to_keep=)
returns .logits and .cache; the cache can be copied and repeated per batch row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Output:
    logits: torch.Tensor
    cache: "KVCache"


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


def attend(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None,
           shared: torch.Tensor | None = None, scale: float | None = None, mask_covers_shared: bool = False
           ) -> torch.Tensor:
    """Scaled dot-product attention of q [B, heads, T, D] over keys and values [B, kv_heads, S, D]; each key/value
    head serves heads / kv_heads query heads (grouped-query attention). shared [2, 1, kv_heads, n, D]: keys and
    values before those, the same for every row, read without a copy per row (T = 1 only, as the search needs,
    unless mask_covers_shared). scale: what q·k is multiplied by, 1/sqrt(D) unless given (1 where the weights made
    q that much smaller). mask_covers_shared: mask [B, 1, T, n + S] says which of the shared keys too each new token
    sees (any T; the ONNX export's form, autocomplete.engine.onnx_export); otherwise it covers the row's own only."""
    if shared is None and not mask_covers_shared:
        causal = mask is None and q.shape[2] > 1
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, is_causal=causal, enable_gqa=True,
                                              scale=scale)
    B, heads, T, D = q.shape
    kv_heads = keys.shape[1]
    groups = heads // kv_heads
    assert T == 1 or mask_covers_shared, "shared keys and values are read one new token at a time"
    g = q.reshape(B, kv_heads, groups * T, D)  # query heads grouped by their key/value head (then by position)
    if scale != 1.0:
        g = g * (D ** -0.5 if scale is None else scale)
    own = g @ keys.transpose(-1, -2)
    if mask is not None and not mask_covers_shared:
        own = own.masked_fill(~mask, float("-inf"))
    scores = own if shared is None else torch.cat((g @ shared[0].transpose(-1, -2), own), dim=-1)
    if mask is not None and mask_covers_shared:
        # [B, 1, T, keys] -> [B, 1, groups * T, keys]: the same for each query head of a group
        grouped = mask.unsqueeze(2).expand(B, 1, groups, T, mask.shape[-1]).reshape(B, 1, groups * T, -1)
        scores = scores.masked_fill(~grouped, float("-inf"))
    weights = scores.softmax(dim=-1)
    if shared is None:
        return (weights @ values).reshape(B, heads, T, D)
    n = shared.shape[3]
    y = weights[..., :n] @ shared[1] + weights[..., n:] @ values
    return y.reshape(B, heads, T, D)


def causal_mask(start: int, T: int, device) -> torch.Tensor | None:
    """New tokens after `start` cached ones: each sees the cache and the new ones before it. None where the
    attention needs no mask (one new token) or only its own causal one (nothing cached)."""
    if start == 0 or T == 1:
        return None
    return torch.ones(T, start + T, dtype=torch.bool, device=device).tril(diagonal=start)


def kept(x: torch.Tensor, logits_to_keep: int | torch.Tensor) -> torch.Tensor:
    """The positions whose logits are wanted: the last n (0: all), or those a tensor lists."""
    if isinstance(logits_to_keep, torch.Tensor):
        return x[:, logits_to_keep]
    return x[:, -logits_to_keep:] if logits_to_keep else x


def _linear(n_in: int, n_out: int, bias: bool = True) -> nn.Linear:
    """An nn.Linear (that exact type, so int8 quantization recognises it) left uninitialised: the checkpoint
    provides its weights, and random initialisation costs most of a second at GPT-2 sizes."""
    layer = nn.Linear.__new__(nn.Linear)
    nn.Module.__init__(layer)
    layer.in_features, layer.out_features = n_in, n_out
    layer.weight = nn.Parameter(torch.empty(n_out, n_in), requires_grad=False)
    layer.register_parameter("bias", nn.Parameter(torch.empty(n_out), requires_grad=False) if bias else None)
    return layer


def _embedding(n: int, dim: int) -> nn.Embedding:
    return nn.Embedding(n, dim, _weight=torch.empty(n, dim), _freeze=True)  # given a weight: no initialisation


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, eps: float):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(n_embd, eps=eps)
        self.c_attn = _linear(n_embd, 3 * n_embd)  # q, k, v in one matmul
        self.attn_proj = _linear(n_embd, n_embd)
        self.ln_2 = nn.LayerNorm(n_embd, eps=eps)
        self.c_fc = _linear(n_embd, 4 * n_embd)
        self.mlp_proj = _linear(4 * n_embd, n_embd)

    scale = None  # q·k / sqrt(head_dim), as attend() does by default

    def attention_inputs(self, x: torch.Tensor, turn: None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """q [B, n_head, T, head_dim] and the new keys and values [2, B, n_head, T, head_dim] (views of one
        tensor: they go into the cache in one copy). turn: for the Llama Block's interface; GPT-2 has none."""
        B, T, C = x.shape
        qkv = self.c_attn(self.ln_1(x)).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1:]

    def rest(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The layer after attention: y [B, n_head, T, head_dim] projected and added, then the MLP."""
        B, T, C = x.shape
        x = x + self.attn_proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

    def forward(self, x: torch.Tensor, kv: torch.Tensor, start: int, mask: torch.Tensor | None,
                shared: torch.Tensor | None = None) -> torch.Tensor:
        T = x.shape[1]
        q, new = self.attention_inputs(x)
        kv[:, :, :, start:start + T] = new
        return self.rest(x, attend(q, kv[0, :, :, :start + T], kv[1, :, :, :start + T], mask, shared))


class GPT2(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        self.config = config
        n_embd, eps = config["n_embd"], config.get("layer_norm_epsilon", 1e-5)
        self.n_head = config["n_head"]
        self.context_length = config.get("n_positions") or config.get("n_ctx") or 1024
        self.wte = _embedding(config["vocab_size"], n_embd)
        self.wpe = _embedding(self.context_length, n_embd)
        self.h = nn.ModuleList(Block(n_embd, self.n_head, eps) for _ in range(config["n_layer"]))
        self.ln_f = nn.LayerNorm(n_embd, eps=eps)
        self.lm_head = _linear(n_embd, config["vocab_size"], bias=False)

    @property
    def device(self) -> torch.device:
        return self.wte.weight.device

    @property
    def blocks(self) -> nn.ModuleList:
        return self.h

    @property
    def n_kv_head(self) -> int:
        return self.n_head

    def embed(self, input_ids: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, None]:
        """The first layer's input, and what each Block's attention_inputs takes besides (nothing, for GPT-2)."""
        return self.wte(input_ids) + self.wpe(positions), None

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.ln_f(x))

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        n_embd = self.config["n_embd"]
        return KVCache(len(self.h), batch, self.n_head, capacity, n_embd // self.n_head, self.wte.weight.dtype,
                       self.device)

    def forward(self, input_ids: torch.Tensor, cache: KVCache | None = None, use_cache: bool = True,
                logits_to_keep: int | torch.Tensor = 0, positions: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None) -> Output:
        """logits_to_keep: the last n positions' logits (0: all), or the positions a tensor lists.
        positions ([B, T]) and attn_mask ([B, 1, T, cached + T], True = may attend): for rows whose cached tokens
        differ in number (the suggestion search's tree); by default the new tokens follow the cache in order."""
        B, T = input_ids.shape
        cache = cache or self.new_cache(B, capacity=T + 64)
        start = cache.length
        cache.reserve(start + T, self.context_length)
        if positions is None:
            positions = torch.arange(start, start + T, device=input_ids.device)
        x, _ = self.embed(input_ids, positions)
        mask = causal_mask(start, T, x.device) if attn_mask is None else attn_mask
        for layer, block in enumerate(self.h):
            x = block(x, cache.kv[layer], start, mask, None if cache.shared is None else cache.shared[layer])
        cache.length = start + T
        return Output(self.head(kept(x, logits_to_keep)), cache)


def load(directory: Path) -> GPT2:
    """Weights from transformers' GPT-2 checkpoints (Conv1D stores them transposed), memory-mapped."""
    from safetensors.torch import load_file

    config = json.loads((directory / "config.json").read_text())
    model = GPT2(config)
    state = {k.removeprefix("transformer."): v for k, v in load_file(directory / "model.safetensors").items()}
    renames = {"attn.c_attn": "c_attn", "attn.c_proj": "attn_proj", "mlp.c_fc": "c_fc", "mlp.c_proj": "mlp_proj"}
    ours = {}
    for key, value in state.items():
        if key.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # old checkpoints store the causal mask as a buffer
        for old, new in renames.items():
            if f".{old}." in key:
                key = key.replace(old, new)
                if key.endswith(".weight"):
                    value = value.t()  # Conv1D is (in, out); Linear is (out, in): a view, no copy needed
        ours[key] = value
    ours.setdefault("lm_head.weight", ours["wte.weight"])  # tied to the token embedding
    model.load_state_dict({k: v.float() for k, v in ours.items()}, strict=True, assign=True)
    return model.eval()
