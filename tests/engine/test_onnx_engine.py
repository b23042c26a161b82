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
    ids = [5, 9, 12]
    first = onnx_engine.load(tiny_dir, "fp32", "tiny").read(ids)[0]  # read now: the session maps the file torn below
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
    assert np.array_equal(again.read(ids)[0], first)


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


def test_states_share_a_buffer_and_never_change_what_they_read(tiny_dir, tmp_path, monkeypatch):
    """A state appends in place where it ends its buffer's written part (a completion's tokens, the search's rows)
    and moves to a copy where another wrote past it; a search's rows give way to the state they grew from (a
    completion after a search copies nothing) and are read again if asked for. Every state reads as the whole text
    read at once would, and one read after stays as it was."""
    monkeypatch.setenv("AUTOCOMPLETE_CACHE_DIR", str(tmp_path))
    engine = onnx_engine.load(tiny_dir, "fp32", "tiny")
    ids = np.random.default_rng(0).integers(0, 300, 40).tolist()

    def whole(tokens):
        return engine.read(tokens)[0]

    _, frame = engine.read(ids[:10])
    first, a = engine.read(ids[10:12], after=frame)
    _, b = engine.read(ids[10:11], after=frame)
    assert frame.length == 10 and a.buffer is not frame.buffer  # read after a short state: a copy
    for token in ids[12:12 + engine.SLACK // 8]:
        engine.extend(a, token)  # in place
    np.testing.assert_allclose(first, whole(ids[:12]), atol=1e-4, rtol=0)
    tree = engine.tree(b)
    rows = tree.next_logits([(ids[11],), (ids[20],)])
    assert tree.cursor.buffer is b.buffer and tree.holds((ids[11],))  # the rows went in place after b
    np.testing.assert_allclose(rows[0], whole(ids[:12]), atol=1e-4, rtol=0)
    np.testing.assert_allclose(rows[1], whole(ids[:11] + [ids[20]]), atol=1e-4, rtol=0)
    np.testing.assert_allclose(engine.extend(b, ids[11]), whole(ids[:12]), atol=1e-4, rtol=0)
    assert tree.cursor.buffer is b.buffer and not tree.holds((ids[11],)) and tree.nbytes == 0  # they gave way
    deeper = tree.next_logits([(ids[11], ids[12])])[0]  # read again where the tree goes on, its parent first
    assert tree.cursor.buffer is not b.buffer and tree.holds((ids[11],))
    np.testing.assert_allclose(deeper, whole(ids[:13]), atol=1e-4, rtol=0)
    np.testing.assert_allclose(engine.extend(b, ids[12]), whole(ids[:13]), atol=1e-4, rtol=0)
    long = ids[:10] + ids[10:12] + ids[12:12 + engine.SLACK // 8]
    np.testing.assert_allclose(engine.extend(a, 7), whole(long + [7]), atol=1e-4, rtol=0)


def test_reading_after_a_long_state_appends_in_its_buffer(tiny_dir, tmp_path, monkeypatch):
    """After a state of SHARE tokens or more, a read goes in place (no copy of a long prompt), and a second read
    after the same state moves to a copy: both read as the whole text."""
    monkeypatch.setenv("AUTOCOMPLETE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(onnx_engine.OnnxEngine, "SHARE", 8)
    engine = onnx_engine.load(tiny_dir, "fp32", "tiny")
    ids = np.random.default_rng(3).integers(0, 300, 14).tolist()
    _, root = engine.read(ids[:8])
    engine.tree(root).next_logits([(ids[8],)])  # a search's rows after it: they give way
    one, first = engine.read(ids[8:10], after=root)
    two, second = engine.read(ids[8:11], after=root)
    assert first.buffer is root.buffer and second.buffer is not root.buffer and root.length == 8
    np.testing.assert_allclose(one, engine.read(ids[:10])[0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(two, engine.read(ids[:11])[0], atol=1e-4, rtol=0)


def test_a_prompt_is_read_in_chunks_with_one_row_of_logits(tiny_dir, tmp_path, monkeypatch):
    """A prompt longer than CHUNK reads as a whole (the tiny model's 64-token window stands in: CHUNK made small)."""
    monkeypatch.setenv("AUTOCOMPLETE_CACHE_DIR", str(tmp_path))
    engine = onnx_engine.load(tiny_dir, "fp32", "tiny")
    ids = np.random.default_rng(1).integers(0, 300, 50).tolist()
    whole = engine.read(ids)[0]
    monkeypatch.setattr(onnx_engine.OnnxEngine, "CHUNK", 8)
    chunked, state = engine.read(ids)
    assert chunked.shape == whole.shape and state.length == 50
    np.testing.assert_allclose(chunked, whole, atol=1e-4, rtol=0)


def test_a_tree_past_what_the_graph_indexes_begins_again(tiny_dir, tmp_path, monkeypatch):
    """A search whose rows would pass the keys a run may read (Llama's rotary tables) starts its sequence again
    after the state, reading again the ancestors it then needs: its rows still read as the whole text would."""
    monkeypatch.setenv("AUTOCOMPLETE_CACHE_DIR", str(tmp_path))
    engine = onnx_engine.load(tiny_dir, "fp32", "tiny")
    ids = np.random.default_rng(2).integers(0, 300, 12).tolist()
    _, state = engine.read(ids[:8])
    engine.max_keys = 8 + 5
    tree = engine.tree(state)
    tree.next_logits([(ids[8],), (ids[9],), (ids[10],)])
    first = tree.cursor.buffer
    rows = tree.next_logits([(ids[8], ids[9]), (ids[8], ids[10]), (ids[9], ids[11])])
    assert tree.cursor.buffer is not first and tree.cursor.length == 8 + 2 + 3  # begun again: 2 parents, 3 rows
    for row, tokens in zip(rows, [ids[:10], ids[:9] + [ids[10]], ids[:8] + [ids[9], ids[11]]]):
        np.testing.assert_allclose(row, engine.read(tokens)[0], atol=1e-4, rtol=0)
    second = tree.cursor.buffer
    again = tree.next_logits([(ids[10], ids[11])])[0]  # past again: begun again in its own buffer, in place
    assert tree.cursor.buffer is second and tree.cursor.length == 8 + 2
    np.testing.assert_allclose(again, engine.read(ids[:8] + [ids[10], ids[11]])[0], atol=1e-4, rtol=0)
