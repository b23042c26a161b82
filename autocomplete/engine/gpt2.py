"""A compact GPT-2 forward pass in plain torch, loaded straight from safetensors.

Importing transformers' modeling code costs ~3 s of every shell call; GPT-2 is small enough to write out. The
interface is the slice of transformers' one that autocomplete uses: model(input_ids=, cache=, logits_to_keep=)
returns .logits and .cache; the cache can be copied and repeated per batch row.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from autocomplete.engine.kv_cache import KVCache
from autocomplete.engine.layers import Output, attend, causal_mask, embedding, linear, positions_to_keep


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, eps: float):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(n_embd, eps=eps)
        self.c_attn = linear(n_embd, 3 * n_embd)  # q, k, v in one matmul
        self.attn_proj = linear(n_embd, n_embd)
        self.ln_2 = nn.LayerNorm(n_embd, eps=eps)
        self.c_fc = linear(n_embd, 4 * n_embd)
        self.mlp_proj = linear(4 * n_embd, n_embd)

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
        self.wte = embedding(config["vocab_size"], n_embd)
        self.wpe = embedding(self.context_length, n_embd)
        self.h = nn.ModuleList(Block(n_embd, self.n_head, eps) for _ in range(config["n_layer"]))
        self.ln_f = nn.LayerNorm(n_embd, eps=eps)
        self.lm_head = linear(n_embd, config["vocab_size"], bias=False)

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
        return Output(self.head(positions_to_keep(x, logits_to_keep)), cache)


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
