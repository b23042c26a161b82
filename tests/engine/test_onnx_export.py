"""The ONNX export (autocomplete.engine.onnx_export) against the torch models it comes from, run through
autocomplete.engine.onnx_run: fp32 equal to torch's logits and keys/values, int8 and int4 agreeing on the top token."""

from __future__ import annotations

import stat
import subprocess
import sys

import numpy as np
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


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request, tiny_gpt2, tiny_llama):
    return tiny_gpt2 if request.param == "gpt2" else tiny_llama


_sessions: dict = {}


def session(model, precision, tmp_path_factory):
    key = (id(model), precision)
    if key not in _sessions:
        path = onnx_export.export(model, tmp_path_factory.mktemp(f"onnx-{precision}"), precision)
        _sessions[key] = onnx_run.open_session(path, threads=1)
    return _sessions[key]


def empty(model, batch):
    L, H, D = onnx_export.shapes(model)
    return np.zeros((L, 2, batch, H, 0, D), np.float32)


def causal(T):
    return np.tril(np.ones((T, T), bool))[None]


def ids_of(model, n, seed):
    return torch.randint(1, model.config["vocab_size"], (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def test_prompt_then_steps_equal_torch(model, tmp_path_factory):
    """A prompt read with nothing cached (P = S = 0), then one token at a time with the past growing."""
    sess = session(model, "fp32", tmp_path_factory)
    ids = ids_of(model, 12, seed=1)
    with torch.inference_mode():
        out = model(torch.tensor([ids[:7]]))
        logits, present = onnx_run.run(sess, np.array([ids[:7]]), np.arange(7)[None], causal(7), empty(model, 1),
                                       empty(model, 1))
        np.testing.assert_allclose(logits, out.logits[:, -1].numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(present, out.cache.kv[..., :7, :].numpy(), atol=1e-5, rtol=0)
        past = present
        for n, token in enumerate(ids[7:], start=7):
            out = model(torch.tensor([[token]]), cache=out.cache)
            logits, present = onnx_run.run(sess, np.array([[token]]), np.array([[n]]), np.ones((1, 1, n + 1), bool),
                                           empty(model, 1), past)
            np.testing.assert_allclose(logits, out.logits[:, -1].numpy(), atol=1e-4, rtol=0)
            np.testing.assert_allclose(present, out.cache.kv[..., n:n + 1, :].numpy(), atol=1e-5, rtol=0)
            past = np.concatenate((past, present), axis=4)
    assert past.shape[4] == len(ids)


def test_several_new_tokens_after_a_past(model, tmp_path_factory):
    """T > 1 after S > 0: each new token sees the past and the new ones before it."""
    sess = session(model, "fp32", tmp_path_factory)
    ids = ids_of(model, 9, seed=2)
    with torch.inference_mode():
        cache = model(torch.tensor([ids[:5]])).cache
        past = cache.kv[..., :5, :].numpy().copy()
        out = model(torch.tensor([ids[5:]]), cache=cache)
    mask = np.ones((1, 4, 9), bool)
    mask[0, :, 5:] = np.tril(np.ones((4, 4), bool))
    logits, present = onnx_run.run(sess, np.array([ids[5:]]), np.arange(5, 9)[None], mask, empty(model, 1), past)
    np.testing.assert_allclose(logits, out.logits[:, -1].numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(present, out.cache.kv[..., 5:9, :].numpy(), atol=1e-5, rtol=0)


def tree_rows(model):
    """A shared prompt (P = 6) and three rows after it with their own pasts of 0, 2 and 1 tokens (padded to 2, the
    padding filled with noise and masked out), one new token each: what the best-first search sends. Returns the
    graph's inputs and, for each row, the torch model's logits reading that row's whole sequence."""
    prompt = ids_of(model, 6, seed=3)
    own = [[], ids_of(model, 2, seed=4), ids_of(model, 1, seed=5)]
    new = ids_of(model, 3, seed=6)
    P, width = len(prompt), 2
    with torch.inference_mode():
        shared_cache = model(torch.tensor([prompt])).cache
        shared = shared_cache.kv[..., :P, :].numpy().copy()
        L, two, _, H, _, D = shared.shape
        # large noise, so that a row that sees it changes whatever the weights (a trained model's keys can outweigh
        # unit noise); a mask that works hides it all the same
        past = 10 * np.random.default_rng(0).standard_normal((L, two, 3, H, width, D)).astype(np.float32)
        mask = np.zeros((3, 1, P + width + 1), bool)
        mask[:, :, :P] = mask[:, :, -1] = True
        expected = []
        for row, (tokens, token) in enumerate(zip(own, new)):
            whole = model(torch.tensor([prompt + tokens + [token]]))
            expected.append(whole.logits[0, -1].numpy())
            past[:, :, row, :, :len(tokens)] = whole.cache.kv[:, :, 0, :, P:P + len(tokens)].numpy()
            mask[row, :, P:P + len(tokens)] = True
        # the same rows through the torch model's own tree form (shared cache, ragged pasts, a mask)
        cache = model.new_cache(3, width + 1)
        cache.shared = torch.from_numpy(shared)
        cache.kv[..., :width, :] = torch.from_numpy(past)
        cache.length = width
        torch_tree = model(torch.tensor([[t] for t in new]), cache=cache,
                           positions=torch.tensor([[P + len(t)] for t in own]),
                           attn_mask=torch.from_numpy(mask[:, :, P:]).unsqueeze(1)).logits[:, -1].numpy()
    inputs = (np.array([[t] for t in new]), np.array([[P + len(t)] for t in own]), mask, shared, past)
    return inputs, np.stack(expected), torch_tree, cache.kv[..., width:width + 1, :].numpy()


def test_shared_prefix_and_ragged_pasts_equal_torch(model, tmp_path_factory):
    sess = session(model, "fp32", tmp_path_factory)
    inputs, expected, torch_tree, torch_present = tree_rows(model)
    logits, present = onnx_run.run(sess, *inputs)
    assert logits.shape == (3, model.config["vocab_size"])
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(logits, torch_tree, atol=1e-4, rtol=0)
    np.testing.assert_allclose(present, torch_present, atol=1e-5, rtol=0)


def test_the_mask_and_positions_matter(model, tmp_path_factory):
    """Each of the interface's inputs is read: seeing the padding, hiding a shared key, or another position, changes
    that row's logits (a graph that ignored them would pass the tests above only by luck)."""
    sess = session(model, "fp32", tmp_path_factory)
    inputs, expected, _, _ = tree_rows(model)
    ids, positions, mask, shared, past = inputs

    def changed(rows_logits, row):
        return np.abs(rows_logits[row] - expected[row]).max() > 1e-3

    sees_padding = mask.copy()
    sees_padding[0, :, 6:8] = True  # row 0 has no past of its own: both slots are noise
    assert changed(onnx_run.run(sess, ids, positions, sees_padding, shared, past)[0], 0)
    hides_shared = mask.copy()
    hides_shared[1, :, 2] = False
    assert changed(onnx_run.run(sess, ids, positions, hides_shared, shared, past)[0], 1)
    assert changed(onnx_run.run(sess, ids, positions + 1, mask, shared, past)[0], 2)


@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_quantized_top_token_agrees_with_fp32(tiny_gpt2, tiny_dir, precision, tmp_path_factory):
    """On the tiny GPT-2, which memorised its phrases (confident logits, so the top token is not a coin toss)."""
    exact, quantized = (session(tiny_gpt2, p, tmp_path_factory) for p in ("fp32", precision))
    tokenizer = Tokenizer(tiny_dir, tiny_gpt2.config)
    prompts = ["san", "seoul", "the best way to learn python is", "new york", "how to make cold"]
    agree = 0
    for prompt in prompts:
        ids = tokenizer(prompt)["input_ids"]
        T = len(ids)
        feeds = (np.array([ids]), np.arange(T)[None], causal(T), empty(tiny_gpt2, 1), empty(tiny_gpt2, 1))
        want, _ = onnx_run.run(exact, *feeds)
        got, present = onnx_run.run(quantized, *feeds)
        agree += int(want.argmax() == got.argmax())
        assert present.shape == (2, 2, 1, 2, T, 32)
        assert np.abs(got - want).max() > 0  # really quantized
    assert agree >= len(prompts) - 1


def test_quantized_llama_runs_and_stays_near(tiny_llama, tmp_path_factory):
    """The tiny random Llama's logits are nearly flat (std 0.2), so its top token is no test: int8 within a tenth
    of that spread of fp32 (measured: 0.04 of it), int4 within 0.6 (measured: 0.4), and both really quantized."""
    inputs, _, _, _ = tree_rows(tiny_llama)
    exact = onnx_run.run(session(tiny_llama, "fp32", tmp_path_factory), *inputs)[0]
    spread = exact.std()
    for precision, bound, correlation in [("int8", 0.1, 0.999), ("int4", 0.6, 0.98)]:
        got, present = onnx_run.run(session(tiny_llama, precision, tmp_path_factory), *inputs)
        assert present.shape == (3, 2, 3, 2, 1, 16)
        assert 0 < np.abs(got - exact).max() < bound * spread, precision
        assert np.corrcoef(got.ravel(), exact.ravel())[0, 1] > correlation, precision


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


def test_shapes_are_constants(model):
    """The traced graph's view()s reshape to constant shapes (static_shapes): what it still computes from shapes at
    run time is read from the inputs once a call (the key counts, the mask's), none in any layer."""
    graph = onnx_export.to_onnx(model).graph
    shapes = [n for n in graph.node if n.op_type == "Shape"]
    assert shapes and all(n.input[0] in onnx_run.inputs(len(model.blocks)) for n in shapes), \
        [n.input[0] for n in shapes]
    computed = {n.output[0] for n in graph.node if n.op_type in ("Concat", "Unsqueeze", "Gather")}
    dynamic = [n.name for n in graph.node if n.op_type in ("Reshape", "Expand") and n.input[1] in computed]
    assert len(dynamic) <= 1, dynamic  # the mask's, grouped once for every layer
