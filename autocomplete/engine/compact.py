"""Which checkpoints our compact forwards (autocomplete.engine.gpt2, .llama) run exactly, read from config.json
alone: the ONNX engine decides without importing torch, and anything else keeps transformers' modeling."""

from __future__ import annotations

import json
from pathlib import Path


def architecture(directory: Path) -> str | None:
    """"gpt2" or "llama" when a compact forward runs the model in `directory` (safetensors and tokenizer.json
    there too), else None."""
    try:
        config = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    if not ((directory / "model.safetensors").is_file() and (directory / "tokenizer.json").is_file()):
        return None
    if _plain_gpt2(config):
        return "gpt2"
    return "llama" if _plain_llama(config) else None


def module(arch: str):
    """The module with that architecture's forward and load() (imports torch)."""
    import importlib

    return importlib.import_module(f"autocomplete.engine.{arch}")


def _plain_gpt2(config: dict) -> bool:
    return (config.get("model_type") == "gpt2" and config.get("activation_function", "gelu_new") == "gelu_new"
            and not config.get("scale_attn_by_inverse_layer_idx") and not config.get("reorder_and_upcast_attn")
            and config.get("scale_attn_weights", True))


def _plain_llama(config: dict) -> bool:
    """Default rotary embeddings, no biases, SiLU."""
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    return (config.get("model_type") == "llama" and config.get("hidden_act", "silu") == "silu"
            and not config.get("attention_bias") and not config.get("mlp_bias")
            and rope.get("rope_type", rope.get("type", "default")) == "default"
            and config.get("pretraining_tp", 1) == 1)
