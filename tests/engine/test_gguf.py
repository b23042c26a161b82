"""GGUF conversion: once per file, into the cache, the older conversions of a changed file replaced."""

from __future__ import annotations

import contextlib
import os
import time
import types
from pathlib import Path

from autocomplete.engine import gguf


def fake_conversion(monkeypatch):
    """convert()'s own steps with transformers' GGUF reading stubbed out: a model "converted" in milliseconds."""
    class Saved:
        def __init__(self):
            self.hf_quantizer, self.config = None, types.SimpleNamespace(quantization_config=None)

        def save_pretrained(self, directory):
            for name in ("config.json", "model.safetensors", "tokenizer.json"):
                (Path(directory) / name).write_text("{}")

    auto = types.SimpleNamespace(from_pretrained=lambda *args, **kwargs: Saved())
    monkeypatch.setattr(gguf, "quiet_transformers", lambda: types.SimpleNamespace(AutoTokenizer=auto,
                                                                                 AutoModelForCausalLM=auto))
    monkeypatch.setattr(gguf, "_no_gguf_progress_bar", contextlib.nullcontext)


def test_a_new_conversion_replaces_older_ones_of_its_gguf_and_prunes_unused_ones(tmp_path, monkeypatch):
    fake_conversion(monkeypatch)
    monkeypatch.setenv("AUTOCOMPLETE_CACHE_DIR", str(tmp_path / "cache"))
    model, other = tmp_path / "model.gguf", tmp_path / "other.gguf"
    for file in (model, other):
        file.write_bytes(b"GGUF" + b"\0" * 20)
    first, kept = gguf.convert(model), gguf.convert(other)
    unused = tmp_path / "cache" / "gguf" / "unused-0123456789abcdef"  # another conversion, not used for long
    unused.mkdir()
    (unused / "config.json").write_text("{}")
    writing = tmp_path / "cache" / "gguf" / ".model-0123456789abcdef.x1y2z3"  # another process converting it
    writing.mkdir()
    (writing / "gguf-source").write_text(str(model.resolve()))
    long_ago = time.time() - 60 * 86400
    os.utime(unused, (long_ago, long_ago))
    assert gguf.convert(model) == first  # used: converted once
    os.utime(model, ns=(model.stat().st_atime_ns, model.stat().st_mtime_ns + 10**9))  # the file changed
    second = gguf.convert(model)
    assert second != first and (second / "config.json").is_file() and (second / "gguf-source").is_file()
    assert sorted(p.name for p in (tmp_path / "cache" / "gguf").iterdir()) == sorted([second.name, kept.name,
                                                                                      writing.name])
