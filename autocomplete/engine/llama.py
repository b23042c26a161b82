"""A compact forward pass for the Llama family (SmolLM2, the offline starter, is one), in plain torch, loaded
straight from safetensors: RMSNorm, rotary position embeddings, grouped-query attention, a SwiGLU MLP.

transformers' Llama code spends about a third of each token's time around the matrix products (30 layers of
Python), and importing it costs seconds of every shell call. Same interface as autocomplete.engine.gpt2 and the same
KV cache; logits equal transformers' to 1e-4 (tests/engine/test_llama.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from autocomplete.engine.kv_cache import KVCache
from autocomplete.engine.layers import Output, attend, causal_mask, embedding, linear, positions_to_keep


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(dim), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, self.weight.shape, self.weight, self.eps)


class Block(nn.Module):
    """One layer. Loaded as load() arranges the checkpoint: q, k and v as one matrix and gate, up as one (fewer,
    larger products: each call has a fixed cost, the int8 ones most of all); the query rows prescaled by
    1/sqrt(head_dim); each head's query and key features reordered so a rotary pair (i, i + d/2) sits side by side,
    which makes the rotation one complex multiplication (the attention scores, q·k, don't change)."""

    def __init__(self, dim: int, n_head: int, n_kv_head: int, head_dim: int, hidden: int, eps: float):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = n_head, n_kv_head, head_dim
        self.input_layernorm = RMSNorm(dim, eps)
        self.qkv = linear(dim, (n_head + 2 * n_kv_head) * head_dim, bias=False)
        self.o_proj = linear(n_head * head_dim, dim, bias=False)
        self.post_attention_layernorm = RMSNorm(dim, eps)
        self.gate_up = linear(dim, 2 * hidden, bias=False)
        self.down_proj = linear(hidden, dim, bias=False)

    scale = 1.0  # the query rows come prescaled by 1/sqrt(head_dim)

    def attention_inputs(self, x: torch.Tensor, turn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q [B, n_head, T, head_dim], rotated, and the new keys (rotated) and values [2, B, n_kv_head, T,
        head_dim]. turn: e^(i·position·frequency) for each new position, [T, 1, d/2] (or [B, T, 1, d/2]), complex."""
        B, T, _ = x.shape
        n_qk, d = self.n_head + self.n_kv_head, self.head_dim
        qkv = self.qkv(self.input_layernorm(x))
        qk = rotate(qkv[..., : n_qk * d].reshape(B, T, n_qk, d // 2, 2), turn).reshape(B, T, n_qk, d).transpose(1, 2)
        v = qkv[..., n_qk * d:].view(B, T, self.n_kv_head, d).transpose(1, 2)
        return qk[:, : self.n_head], torch.stack((qk[:, self.n_head:], v))

    def rest(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The layer after attention: y [B, n_head, T, head_dim] projected and added, then the MLP."""
        B, T, _ = x.shape
        x = x + self.o_proj(y.transpose(1, 2).reshape(B, T, -1))
        gate, up = self.gate_up(self.post_attention_layernorm(x)).chunk(2, dim=-1)
        return x + self.down_proj(F.silu(gate) * up)

    def forward(self, x: torch.Tensor, kv: torch.Tensor, start: int, mask: torch.Tensor | None,
                turn: torch.Tensor, shared: torch.Tensor | None = None) -> torch.Tensor:
        T = x.shape[1]
        q, new = self.attention_inputs(x, turn)
        kv[:, :, :, start:start + T] = new
        y = attend(q, kv[0, :, :, :start + T], kv[1, :, :, :start + T], mask, shared, scale=self.scale)
        return self.rest(x, y)


def rotate(pairs: torch.Tensor, turn: torch.Tensor) -> torch.Tensor:
    """Rotary pairs [..., d/2, 2] turned by a complex turn: one complex multiplication (one kernel)."""
    return torch.view_as_real(torch.view_as_complex(pairs) * turn)


class Llama(nn.Module):
    cache_layout = "rotary pairs side by side"  # keys as Block stores them: frame caches on disk say which

    def __init__(self, config: dict):
        super().__init__()
        self.config = config
        dim = config["hidden_size"]
        self.n_head = config["num_attention_heads"]
        self.n_kv_head = config.get("num_key_value_heads") or self.n_head
        self.head_dim = config.get("head_dim") or dim // self.n_head
        self.context_length = config.get("max_position_embeddings") or 2048
        eps = config.get("rms_norm_eps", 1e-6)
        rope = config.get("rope_parameters") or {}
        theta = rope.get("rope_theta") or config.get("rope_theta") or 10000.0
        self.embed_tokens = embedding(config["vocab_size"], dim)
        self.layers = nn.ModuleList(
            Block(dim, self.n_head, self.n_kv_head, self.head_dim, config["intermediate_size"], eps)
            for _ in range(config["num_hidden_layers"]))
        self.norm = RMSNorm(dim, eps)
        self.lm_head = linear(dim, config["vocab_size"], bias=False)
        # The rotations of every position, computed once (as transformers does: angles in fp32, then cos and sin)
        inv_freq = 1.0 / theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float) / self.head_dim)
        angles = torch.arange(self.context_length, dtype=torch.float)[:, None] * inv_freq
        # kept as real and imaginary parts [positions, d/2, 2] (the ONNX export reads them so; ONNX has no complex
        # numbers), viewed as complex by the torch path
        turns = torch.polar(torch.ones_like(angles), angles)
        self.register_buffer("turns_real", torch.view_as_real(turns).contiguous(), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.embed_tokens.weight.device

    @property
    def blocks(self) -> nn.ModuleList:
        return self.layers

    @property
    def turns(self) -> torch.Tensor:
        """e^(i·position·frequency) [positions, d/2], complex: a view of turns_real."""
        return torch.view_as_complex(self.turns_real)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.norm(x))

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        return KVCache(len(self.layers), batch, self.n_kv_head, capacity, self.head_dim,
                       self.embed_tokens.weight.dtype, self.device)

    def forward(self, input_ids: torch.Tensor, cache: KVCache | None = None, use_cache: bool = True,
                logits_to_keep: int | torch.Tensor = 0, positions: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None) -> Output:
        """As autocomplete.engine.gpt2.GPT2.forward: logits_to_keep, and positions / attn_mask for ragged rows."""
        B, T = input_ids.shape
        cache = cache or self.new_cache(B, capacity=T + 64)
        start = cache.length
        cache.reserve(start + T, self.context_length)
        turns = self.turns
        turn = (turns[start:start + T] if positions is None else turns[positions]).unsqueeze(-2)
        x = self.embed_tokens(input_ids)
        mask = causal_mask(start, T, x.device) if attn_mask is None else attn_mask
        for layer, block in enumerate(self.layers):
            x = block(x, cache.kv[layer], start, mask, turn, None if cache.shared is None else cache.shared[layer])
        cache.length = start + T
        return Output(self.head(positions_to_keep(x, logits_to_keep)), cache)


def load(directory: Path) -> Llama:
    """Weights from transformers' Llama checkpoints (memory-mapped where kept as they are), arranged as Block
    expects; the output head tied to the embedding unless the checkpoint has its own."""
    from safetensors.torch import load_file

    config = json.loads((directory / "config.json").read_text())
    model = Llama(config)
    ours = {}
    for key, value in load_file(directory / "model.safetensors").items():
        key = key.removeprefix("model.")
        for part in (".self_attn.", ".mlp."):
            key = key.replace(part, ".")
        if key.endswith("rotary_emb.inv_freq"):
            continue  # old checkpoints store it; it is computed here
        ours[key] = value.float()
    ours.setdefault("lm_head.weight", ours["embed_tokens.weight"])
    d = model.head_dim
    for i in range(len(model.layers)):
        take = lambda name: ours.pop(f"layers.{i}.{name}.weight")  # noqa: E731
        q, k = _pairs_adjacent(take("q_proj"), d) * d ** -0.5, _pairs_adjacent(take("k_proj"), d)
        ours[f"layers.{i}.qkv.weight"] = torch.cat([q, k, take("v_proj")])
        ours[f"layers.{i}.gate_up.weight"] = torch.cat([take("gate_proj"), take("up_proj")])
    model.load_state_dict(ours, strict=True, assign=True)
    return model.eval()


def _pairs_adjacent(weight: torch.Tensor, d: int) -> torch.Tensor:
    """Rows of each head reordered from (0, 1, ..., d-1) to (0, d/2, 1, d/2 + 1, ...): a rotary pair side by side."""
    heads = weight.view(-1, 2, d // 2, weight.shape[-1])
    return heads.transpose(1, 2).reshape(weight.shape)
