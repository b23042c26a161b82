"""--precision int8 against fp32: one layer's numbers, and the tiny model decoding as the product decodes."""

from __future__ import annotations

import torch
from torch import nn

from autocomplete.engine import models
from autocomplete.engine.generate import generate
from autocomplete.engine.quant import Int8Linear, quantize
from tiny_gpt2 import PHRASES


def layer(seed: int = 0, bias: bool = True) -> nn.Linear:
    torch.manual_seed(seed)
    linear = nn.Linear(256, 384, bias=bias)
    nn.init.normal_(linear.weight, std=0.05)
    return linear


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).norm() / want.norm())


def test_several_rows_run_in_fp32():
    """On the fp32 weights (kept as [in, out], so only the order of the sums differs from nn.Linear's)."""
    linear = layer()
    x = torch.randn(2, 5, 256)
    with torch.no_grad():
        assert relative_error(Int8Linear(linear)(x), linear(x)) < 1e-6


def test_one_row_is_close_to_fp32():
    linear = layer()
    x = torch.randn(1, 1, 256)
    with torch.no_grad():
        assert relative_error(Int8Linear(linear)(x), linear(x)) < 0.02


def test_outlier_features_keep_the_rest_precise():
    linear = layer(bias=False)
    x = torch.randn(1, 256)
    x[0, [3, 100]] = torch.tensor([300.0, -250.0])  # a few huge features, as real LLMs have
    with torch.no_grad():
        want = linear(x)
        ours = relative_error(Int8Linear(linear)(x), want)
        # The same int8 weights with one activation scale for the whole row: the outliers set the scale.
        plain = relative_error(Int8Linear(linear, outlier=float("inf"))(x), want)
    assert ours < 0.02
    assert plain > 2 * ours


def test_quantize_swaps_every_linear_and_shares_the_fp32_weights(tiny_dir):
    fp32 = models.load(str(tiny_dir), "cpu")
    before = {name: m.weight for name, m in fp32.model.named_modules() if type(m) is nn.Linear}
    int8 = models.load(str(tiny_dir), "cpu", "int8")
    after = {name: m for name, m in int8.model.named_modules() if isinstance(m, (nn.Linear, Int8Linear))}
    assert after.keys() == before.keys() and "lm_head" in after
    assert all(isinstance(m, Int8Linear) for m in after.values())
    assert all(torch.equal(after[name].weight, before[name]) for name in before)


def test_quantize_leaves_a_model_without_linears_alone():
    model = nn.Sequential(nn.ReLU())
    assert quantize(model) is model


def decoded_argmax(model, ids: list[int]) -> list[int]:
    """Teacher-forced, the way the product decodes: the first token's forward, then one token per forward with
    the KV cache; the likeliest next token at every position."""
    picks, cache = [], None
    with torch.inference_mode():
        for token in ids:
            out = model(input_ids=torch.tensor([[token]]), cache=cache, use_cache=True)
            cache = out.cache
            picks.append(int(out.logits[0, -1].argmax()))
    return picks


def test_int8_decodes_like_fp32_on_the_tiny_model(tiny_dir, tiny):
    int8 = models.load(str(tiny_dir), "cpu", "int8")
    same = total = 0
    for phrase in sorted(set(PHRASES)):
        ids = tiny.encode(phrase)
        a, b = decoded_argmax(tiny.model, ids), decoded_argmax(int8.model, ids)
        same += sum(x == y for x, y in zip(a, b))
        total += len(a)
    assert same / total >= 0.97
    greedy = list(generate(int8.model, int8.encode("san"), 20, temperature=0, eos_ids=int8.eos_ids))
    assert int8.decode(greedy) == " francisco weather is good in april?"


def test_a_tied_output_head_keeps_one_copy_shared_with_the_embedding(tiny_dir):
    """The head's weights are kept as [in, out] (an outlier feature's weights one contiguous row); the embedding
    tied to it reads that same copy, so int8 adds no second [vocab, dim] matrix, and looks tokens up as before."""
    fp32 = models.load(str(tiny_dir), "cpu")
    int8 = models.load(str(tiny_dir), "cpu", "int8")
    head = int8.model.lm_head
    assert head.weight_t.is_contiguous()
    (tied,) = [m for m in int8.model.modules() if isinstance(m, nn.Embedding)
               and m.weight.data_ptr() == head.weight_t.data_ptr()]
    (original,) = [m for m in fp32.model.modules() if isinstance(m, nn.Embedding)
                   and m.weight.shape == tied.weight.shape]
    assert torch.equal(tied.weight, original.weight)
    ids = torch.tensor([[1, 5, 9]])
    assert torch.equal(tied(ids), original(ids))


def test_int8_llama_runs_q_k_v_and_gate_up_as_one_layer_each(smollm2_cache):
    """Fewer int8 calls a token (each has a fixed cost): the stacked layers compute what the separate ones did,
    one token at a time, with the same per-channel scales and the same input's activation scale."""
    from autocomplete.engine import llama
    from autocomplete.engine.quant import _has_vnni

    directory = smollm2_cache / "models" / "smollm2-135m"
    separate = llama.load(directory)
    block = separate.layers[3]
    h = torch.randn(1, 1, block.q_proj.in_features)
    with torch.no_grad():
        want = [Int8Linear(layer, reduce_range=not _has_vnni())(h)  # as quantize() makes them on this CPU
                for layer in (block.q_proj, block.k_proj, block.v_proj, block.gate_proj, block.up_proj)]
        fused = quantize(llama.load(directory)).layers[3]
        assert not hasattr(fused, "q_proj") and not hasattr(fused, "gate_proj")
        got = [*fused.fused[0](h).split(fused.split_qkv, dim=-1), *fused.fused[1](h).chunk(2, dim=-1)]
    assert all(torch.allclose(g, w, atol=1e-5, rtol=1e-4) for g, w in zip(got, want))
