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

from autocomplete.engine.gpt2 import KVCache, Output, _embedding, _linear, attend, causal_mask, kept


def is_compact_llama(directory: Path) -> bool:
    """Whether `directory` holds a plain Llama this module runs exactly: default rotary embeddings, no biases,
    SiLU, safetensors weights and a tokenizer.json. Anything else keeps transformers' modeling."""
    try:
        config = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return False
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    plain = (config.get("model_type") == "llama" and config.get("hidden_act", "silu") == "silu"
             and not config.get("attention_bias") and not config.get("mlp_bias")
             and rope.get("rope_type", rope.get("type", "default")) == "default"
             and config.get("pretraining_tp", 1) == 1)
    return plain and (directory / "model.safetensors").is_file() and (directory / "tokenizer.json").is_file()


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(dim), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding: each pair (i, i + d/2) of a head's features turned by the position's angle."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Block(nn.Module):
    def __init__(self, dim: int, n_head: int, n_kv_head: int, head_dim: int, hidden: int, eps: float):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = n_head, n_kv_head, head_dim
        self.input_layernorm = RMSNorm(dim, eps)
        self.q_proj = _linear(dim, n_head * head_dim, bias=False)
        self.k_proj = _linear(dim, n_kv_head * head_dim, bias=False)
        self.v_proj = _linear(dim, n_kv_head * head_dim, bias=False)
        self.o_proj = _linear(n_head * head_dim, dim, bias=False)
        self.post_attention_layernorm = RMSNorm(dim, eps)
        self.gate_proj = _linear(dim, hidden, bias=False)
        self.up_proj = _linear(dim, hidden, bias=False)
        self.down_proj = _linear(hidden, dim, bias=False)
        self.fused = None  # int8 (autocomplete.engine.quant): [q, k, v] as one layer, [gate, up] as one: fewer calls

    def forward(self, x: torch.Tensor, kv: torch.Tensor, start: int, mask: torch.Tensor | None,
                cos: torch.Tensor, sin: torch.Tensor, shared: torch.Tensor | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        h = self.input_layernorm(x)
        if self.fused is not None:
            q, k, v = self.fused[0](h).split(self.split_qkv, dim=-1)
        else:
            q, k, v = self.q_proj(h), self.k_proj(h), self.v_proj(h)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        kv[0, :, :, start:start + T] = k
        kv[1, :, :, start:start + T] = v
        y = attend(q, kv[0, :, :, :start + T], kv[1, :, :, :start + T], mask, shared)
        x = x + self.o_proj(y.transpose(1, 2).reshape(B, T, -1))
        h = self.post_attention_layernorm(x)
        if self.fused is not None:
            gate, up = self.fused[1](h).chunk(2, dim=-1)
        else:
            gate, up = self.gate_proj(h), self.up_proj(h)
        return x + self.down_proj(F.silu(gate) * up)

    @property
    def split_qkv(self) -> tuple[int, int, int]:
        return self.n_head * self.head_dim, self.n_kv_head * self.head_dim, self.n_kv_head * self.head_dim


class Llama(nn.Module):
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
        self.embed_tokens = _embedding(config["vocab_size"], dim)
        self.layers = nn.ModuleList(
            Block(dim, self.n_head, self.n_kv_head, self.head_dim, config["intermediate_size"], eps)
            for _ in range(config["num_hidden_layers"]))
        self.norm = RMSNorm(dim, eps)
        self.lm_head = _linear(dim, config["vocab_size"], bias=False)
        inv_freq = 1.0 / theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float) / self.head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    @property
    def device(self) -> torch.device:
        return self.embed_tokens.weight.device

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
        if positions is None:
            positions = torch.arange(start, start + T, device=input_ids.device)
        angles = positions[..., None].float() * self.inv_freq  # [T, d/2], or [B, T, d/2] given per row
        angles = torch.cat((angles, angles), dim=-1)
        if angles.dim() == 3:
            angles = angles[:, None]  # over the heads
        cos, sin = angles.cos(), angles.sin()
        x = self.embed_tokens(input_ids)
        mask = causal_mask(start, T, x.device) if attn_mask is None else attn_mask
        for layer, block in enumerate(self.layers):
            x = block(x, cache.kv[layer], start, mask, cos, sin,
                      None if cache.shared is None else cache.shared[layer])
        cache.length = start + T
        return Output(self.lm_head(self.norm(kept(x, logits_to_keep))), cache)


def load(directory: Path) -> Llama:
    """Weights from transformers' Llama checkpoints, memory-mapped; the output head tied to the embedding unless
    the checkpoint has its own."""
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
        ours[key] = value
    ours.setdefault("lm_head.weight", ours["embed_tokens.weight"])
    model.load_state_dict({k: v.float() for k, v in ours.items()}, strict=True, assign=True)
    return model.eval()
