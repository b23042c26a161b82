"""The ONNX Runtime engine as the product runs it: which models it takes, its export kept in the cache, and a cold
call that imports no torch. (The graph itself against torch: tests/engine/test_onnx_export.py.)"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from autocomplete.engine import models, onnx_engine
from autocomplete.errors import UsageError, UserError


def test_auto_picks_onnx_on_the_cpu_for_gpt2_and_llama_and_torch_otherwise(tiny_dir, tmp_path, monkeypatch):
    assert onnx_engine.chosen("auto", tiny_dir, "cpu") and onnx_engine.chosen("auto", tiny_dir, "auto")
    assert not onnx_engine.chosen("torch", tiny_dir, "cpu")
    assert not onnx_engine.chosen("auto", tiny_dir, "cuda")
    monkeypatch.setattr(onnx_engine, "_gpu_visible", lambda: True)  # device auto on a GPU machine: torch's
    assert not onnx_engine.chosen("auto", tiny_dir, "auto") and onnx_engine.chosen("auto", tiny_dir, "cpu")
    other = tmp_path / "other"
    other.mkdir()
    for name in ("model.safetensors", "tokenizer.json"):
        (other / name).write_bytes((tiny_dir / name).read_bytes())
    (other / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    assert not onnx_engine.chosen("auto", other, "cpu")
    with pytest.raises(UserError, match="--engine torch"):
        onnx_engine.chosen("onnx", other, "cpu")
    with pytest.raises(UserError, match="on the CPU"):
        onnx_engine.chosen("onnx", tiny_dir, "cuda")


@pytest.mark.parametrize("torn", ["model.onnx", "model.data"])
def test_the_export_is_kept_and_a_torn_one_is_made_again(tiny_dir, tmp_path, monkeypatch, torn):
    monkeypatch.setenv("AUTOCOMPLETE_CACHE_DIR", str(tmp_path))
    first = onnx_engine.load(tiny_dir, "fp32", "tiny")
    (graph,) = (tmp_path / "onnx").glob("*/model.onnx")
    assert graph.stat().st_mode & 0o077 == 0
    stamp = graph.stat().st_mtime_ns
    onnx_engine.load(tiny_dir, "fp32", "tiny")
    assert graph.stat().st_mtime_ns == stamp  # loaded, not exported again
    damaged = graph.parent / torn
    size = damaged.stat().st_size
    damaged.write_bytes(damaged.read_bytes()[: size // 2])
    again = onnx_engine.load(tiny_dir, "fp32", "tiny")
    assert damaged.stat().st_size == size
    ids = [5, 9, 12]
    assert np.array_equal(again.read(ids)[0], first.read(ids)[0])


def test_a_bad_thread_count_is_said_before_anything_is_exported(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOCOMPLETE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("AUTOCOMPLETE_THREADS", "two")
    with pytest.raises(UsageError, match="AUTOCOMPLETE_THREADS"):
        onnx_engine.load(tiny_dir, "fp32", "tiny")
    assert not (tmp_path / "onnx").exists()


def test_int8_on_onnx_decodes_the_memorised_phrase(tiny_dir, tmp_path, monkeypatch):
    from autocomplete.text.sample import generate

    monkeypatch.setenv("AUTOCOMPLETE_CACHE_DIR", str(tmp_path))
    lm = models.load(str(tiny_dir), "cpu", "int8", engine="onnx")
    assert lm.engine.name == "onnx" and lm.engine.precision == "int8" and lm.model is None
    ids = list(generate(lm.engine, lm.encode("san"), 20, temperature=0, eos_ids=lm.eos_ids))
    assert lm.decode(ids) == " francisco weather is good in april?"
    models.unload(lm)


def test_a_cold_call_imports_no_torch(cli, env, tiny_dir):
    """Once the model is exported, a shell call runs on onnxruntime, numpy and tokenizers alone: torch's import
    is seconds of every call."""
    args = ["-m", str(tiny_dir), "-t", "0", "--style", "query", "san fr"]
    assert cli(*args).returncode == 0  # the frame computed and kept
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "autocomplete", *args], capture_output=True,
                            env=env)
    assert result.returncode == 0, result.stderr.decode()
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.decode().splitlines()
                if line.startswith("import time:")}
    assert "onnxruntime" in imported and "autocomplete.engine.onnx_engine" in imported
    assert not {name for name in imported if name.split(".")[0] in ("torch", "transformers")}


def test_tokens_added_one_at_a_time_past_a_fold_read_as_the_whole_text(tiny_dir, tmp_path, monkeypatch):
    """extend() moves its tokens into the shared keys every Rows.FOLD tokens: the logits stay those of reading
    the whole text at once."""
    monkeypatch.setenv("AUTOCOMPLETE_CACHE_DIR", str(tmp_path))
    engine = onnx_engine.load(tiny_dir, "fp32", "tiny")
    ids = np.random.default_rng(0).integers(0, 300, 60).tolist()
    assert len(ids) - 4 > onnx_engine.Rows.FOLD
    _, state = engine.read(ids[:4], room=8)
    for token in ids[4:-1]:
        engine.extend(state, token)
    assert engine.length(state) == len(ids) - 1 and state.n < onnx_engine.Rows.FOLD  # folded on the way
    np.testing.assert_allclose(engine.extend(state, ids[-1]), engine.read(ids)[0], atol=1e-4, rtol=0)
