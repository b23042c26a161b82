"""The ONNX graphs (autocomplete.engine.onnx_export) against the torch models they are written from, run through
autocomplete.engine.onnx_run's Buffer: fp32 equal to torch's logits and keys/values, int8 and int4 near them."""

from __future__ import annotations

import collections
import stat
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from autocomplete.engine import gpt2, llama, onnx_export, onnx_run
from autocomplete.engine.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def tiny_gpt2(tiny_dir):
    return gpt2.load(tiny_dir)  # the `tiny` fixture's model, loaded straight through the compact GPT-2


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """A small random Llama (as tests/engine/test_llama.py builds), three query heads to a key/value head."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=96, intermediate_size=128, num_hidden_layers=3,
                         num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=128,
                         rope_theta=5000.0, tie_word_embeddings=True)
    out = tmp_path_factory.mktemp("onnx-llama")
    LlamaForCausalLM(config).save_pretrained(out)
    return llama.load(out)


@pytest.fixture(scope="module")
def random_gpt2(tmp_path_factory):
    """A small random GPT-2: unlike the trained tiny one, whose memorised phrases make it all but ignore what comes
    before a token it knows, its attention spreads over every key it is shown."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=300, n_embd=96, n_layer=3, n_head=4, n_positions=128)
    out = tmp_path_factory.mktemp("onnx-gpt2")
    GPT2LMHeadModel(config).save_pretrained(out)
    return gpt2.load(out)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request, random_gpt2, tiny_llama):
    return random_gpt2 if request.param == "gpt2" else tiny_llama


_exports: dict = {}


def exported(model, precision, tmp_path_factory):
    key = (id(model), precision)
    if key not in _exports:
        _exports[key] = onnx_export.export(model, tmp_path_factory.mktemp(f"onnx-{precision}"), precision)
    return _exports[key]


def buffer(model, precision, tmp_path_factory, capacity=32):
    session = onnx_run.open_session(exported(model, precision, tmp_path_factory), threads=1)
    return onnx_run.Buffer(session, onnx_run.kv_shape(session), capacity)


def run(buf, ids, positions=None, bias=None, logits_at=None):
    """ids appended after what `buf` holds: by default at the next positions, each seeing everything before it."""
    T, K = len(ids), buf.used + len(ids)
    positions = np.arange(K - T, K) if positions is None else positions
    bias = np.zeros((T, K), np.float32) if bias is None else bias
    return buf.run(np.array(ids), positions, bias, np.array([T - 1] if logits_at is None else logits_at))


def ids_of(model, n, seed):
    return torch.randint(1, model.config["vocab_size"], (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def torch_last(model, ids):
    with torch.inference_mode():
        return model(torch.tensor([ids])).logits[0, -1].numpy()


def test_prompt_then_steps_equal_torch(model, tmp_path_factory):
    """A prompt read with nothing cached, then one token at a time, the buffer growing past its first capacity: the
    logits, and the keys and values written in place, are torch's."""
    buf = buffer(model, "fp32", tmp_path_factory, capacity=8)
    ids = ids_of(model, 12, seed=1)
    with torch.inference_mode():
        out = model(torch.tensor([ids[:7]]))
        np.testing.assert_allclose(run(buf, ids[:7])[0], out.logits[0, -1].numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(buf.kv[..., :7, :], out.cache.kv[..., :7, :].numpy(), atol=1e-5, rtol=0)
        for n, token in enumerate(ids[7:], start=7):
            out = model(torch.tensor([[token]]), cache=out.cache)
            buf.reserve(n + 1)
            np.testing.assert_allclose(run(buf, [token])[0], out.logits[0, -1].numpy(), atol=1e-4, rtol=0)
    assert buf.used == len(ids) and buf.capacity >= len(ids)
    np.testing.assert_allclose(buf.kv[..., :len(ids), :], out.cache.kv[..., :len(ids), :].numpy(), atol=1e-5, rtol=0)


def test_several_new_tokens_after_a_past_and_the_logits_asked_for(model, tmp_path_factory):
    """T > 1 after keys already read (a prompt read in chunks): each new token sees the past and the new ones
    before it; logits_at picks the positions (none: no logits)."""
    buf = buffer(model, "fp32", tmp_path_factory)
    ids = ids_of(model, 9, seed=2)
    assert run(buf, ids[:5], logits_at=[]).shape == (0, model.config["vocab_size"])
    logits = run(buf, ids[5:], logits_at=[3, 1])
    np.testing.assert_allclose(logits[0], torch_last(model, ids), atol=1e-4, rtol=0)
    np.testing.assert_allclose(logits[1], torch_last(model, ids[:7]), atol=1e-4, rtol=0)


def tree_step(model):
    """A prompt of 6 tokens, then rows of a suggestion tree laid out in one sequence after it: (a), (b), then (a, c)
    and (b, d) and (a, e). Each row reads the prompt, its ancestors and itself; returns, for the last step, the
    tokens, positions and bias, and what torch gives reading each row's whole text."""
    prompt = ids_of(model, 6, seed=3)
    a, b, c, d, e = ids_of(model, 5, seed=4)
    rows = [(a, c), (b, d), (a, e)]
    P = len(prompt)
    bias = np.full((3, P + 2 + 3), -np.inf, np.float32)
    bias[:, :P] = 0
    for row, (parent, _) in enumerate(rows):
        bias[row, P + (0 if parent == a else 1)] = 0
        bias[row, P + 2 + row] = 0
    expected = np.stack([torch_last(model, prompt + list(r)) for r in rows])
    return prompt, (a, b), ([r[1] for r in rows], np.full(3, P + 1), bias), expected


def test_tree_rows_equal_torch_reading_each_row_whole(model, tmp_path_factory):
    buf = buffer(model, "fp32", tmp_path_factory)
    prompt, first, (ids, positions, bias), expected = tree_step(model)
    run(buf, prompt)
    P = len(prompt)
    siblings = np.full((2, P + 2), -np.inf, np.float32)
    siblings[:, :P] = 0
    siblings[[0, 1], [P, P + 1]] = 0
    got = run(buf, list(first), np.full(2, P), siblings, [0, 1])
    np.testing.assert_allclose(got, np.stack([torch_last(model, prompt + [t]) for t in first]), atol=1e-4, rtol=0)
    np.testing.assert_allclose(run(buf, ids, positions, bias, [0, 1, 2]), expected, atol=1e-4, rtol=0)


def test_the_bias_and_positions_matter(model, tmp_path_factory):
    """A row that reads its parent's sibling instead of its parent, or stands at another position, reads otherwise:
    the graph honours both (a graph that ignored them would pass the test above only by luck)."""
    prompt, first, (ids, positions, bias), expected = tree_step(model)
    P = len(prompt)

    def last_step(bias, positions):
        buf = buffer(model, "fp32", tmp_path_factory)
        run(buf, prompt)
        both = np.full((2, P + 2), -np.inf, np.float32)
        both[:, :P] = 0
        both[[0, 1], [P, P + 1]] = 0
        run(buf, list(first), np.full(2, P), both, [0, 1])
        return run(buf, ids, positions, bias, [0, 1, 2])

    sees_sibling = bias.copy()
    sees_sibling[0, [P, P + 1]] = -np.inf, 0  # row (a, c) reads (b) in place of (a)
    assert np.abs(last_step(sees_sibling, positions)[0] - expected[0]).max() > 1e-3
    moved = positions.copy()
    moved[2] += 3
    assert np.abs(last_step(bias, moved)[2] - expected[2]).max() > 1e-3


@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_quantized_top_token_agrees_with_fp32(tiny_gpt2, tiny_dir, precision, tmp_path_factory):
    """On the tiny GPT-2, which memorised its phrases (confident logits, so the top token is not a coin toss)."""
    tokenizer = Tokenizer(tiny_dir, tiny_gpt2.config)
    prompts = ["san", "seoul", "the best way to learn python is", "new york", "how to make cold"]
    agree = 0
    for prompt in prompts:
        ids = tokenizer(prompt)["input_ids"]
        want = run(buffer(tiny_gpt2, "fp32", tmp_path_factory), ids)
        got = run(buffer(tiny_gpt2, precision, tmp_path_factory), ids)
        agree += int(want.argmax() == got.argmax())
        assert np.abs(got - want).max() > 0  # really quantized
    assert agree >= len(prompts) - 1


def test_quantized_llama_stays_near(tiny_llama, tmp_path_factory):
    """The tiny random Llama's logits are nearly flat (std 0.2), so its top token is no test: int8 within a tenth
    of that spread of fp32, int4 within 0.6, and both really quantized."""
    ids = ids_of(tiny_llama, 20, seed=7)
    exact = run(buffer(tiny_llama, "fp32", tmp_path_factory), ids, logits_at=list(range(20)))
    spread = exact.std()
    for precision, bound, correlation in [("int8", 0.1, 0.999), ("int4", 0.6, 0.98)]:
        got = run(buffer(tiny_llama, precision, tmp_path_factory), ids, logits_at=list(range(20)))
        assert 0 < np.abs(got - exact).max() < bound * spread, precision
        assert np.corrcoef(got.ravel(), exact.ravel())[0, 1] > correlation, precision


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_layer_is_a_few_fused_ops(model, precision, tmp_path_factory):
    """The class of onnxruntime-genai's builder: per layer one GroupQueryAttention (the cache written in place),
    skip-normalisations and matrix products (MatMulNBits when quantized, biases inside), an activation (Llama's
    gate and up one product, split); no reshaping, transposing or slicing at run time."""
    graph = onnx.load(str(exported(model, precision, tmp_path_factory)), load_external_data=False).graph
    ops = collections.Counter(n.op_type for n in graph.node)
    layers = len(model.blocks)
    assert ops["GroupQueryAttention"] == layers
    assert not {"Reshape", "Transpose", "Slice", "Concat", "Shape", "Expand", "Where"} & set(ops), ops
    assert ops.get("Split", 0) <= layers, ops
    assert sum(ops.values()) <= 11 * layers + 6, ops
    if precision == "int8":
        assert "MatMul" not in ops and ops["MatMulNBits"] >= 4 * layers + 1, ops
        assert ops.get("Add", 0) <= 1, ops  # GPT-2's embedding adds its positions'; every bias is inside a product
        blocks = {n.name.split("_Q")[0].rsplit(".", 1)[-1]: onnx.helper.get_attribute_value(
            next(a for a in n.attribute if a.name == "block_size")) for n in graph.node if n.op_type == "MatMulNBits"}
        assert blocks.pop("qkv") == onnx_export.FINER_BLOCK and set(blocks.values()) == {onnx_export.BLOCK[8]}, blocks


def test_export_is_a_graph_and_its_weights_owner_only(tiny_gpt2, tmp_path):
    path = onnx_export.export(tiny_gpt2, tmp_path / "out", "int8")
    assert path == tmp_path / "out" / "model.onnx"
    files = sorted(path.parent.iterdir())
    assert [p.name for p in files] == ["model.data", "model.onnx"]  # nothing temporary left behind
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    assert files[0].stat().st_size > 5 * files[1].stat().st_size  # the weights are in the data file
    with pytest.raises(ValueError):
        onnx_export.export(tiny_gpt2, tmp_path / "other", "int3")


def test_runtime_does_not_import_torch():
    code = "import sys, autocomplete.engine.onnx_run; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
