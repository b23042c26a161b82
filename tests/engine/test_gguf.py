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
            for name in ("config.json", "tokenizer.json"):
                (Path(directory) / name).write_text("{}")
            header = b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}'
            (Path(directory) / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header
                                                                + b"\0" * 16)

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


def test_a_damaged_conversion_is_named_and_made_again(tmp_path, monkeypatch, capsys):
    """A conversion cut short (a full disk, a crash before the data reached it) was loaded, and failed, at every
    run: it is named, and converted again."""
    fake_conversion(monkeypatch)
    monkeypatch.setenv("AUTOCOMPLETE_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 20)
    out = gguf.convert(model)
    weights = out / "model.safetensors"
    assert gguf.damaged(out) is None
    for cut in (weights.stat().st_size - 4, 20, 3):
        weights.write_bytes(weights.read_bytes()[:cut])
        assert gguf.damaged(out) is not None
        capsys.readouterr()
        assert gguf.convert(model) == out and gguf.damaged(out) is None
        said = capsys.readouterr().err
        assert str(out) in said and "damaged" in said and "converting model.gguf again" in said
