"""--precision int8 against fp32: one layer's numbers, and the tiny model decoding as the product decodes."""

from __future__ import annotations

import torch
from torch import nn

from autocomplete.engine import models
from autocomplete.text.sample import generate
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
    fp32 = models.load(str(tiny_dir), "cpu", engine="torch")
    before = {name: m.weight for name, m in fp32.model.named_modules() if type(m) is nn.Linear}
    int8 = models.load(str(tiny_dir), "cpu", "int8", engine="torch")
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


def test_int8_decodes_like_fp32_on_the_tiny_model(tiny_dir, tiny_torch):
    tiny = tiny_torch
    int8 = models.load(str(tiny_dir), "cpu", "int8", engine="torch")
    same = total = 0
    for phrase in sorted(set(PHRASES)):
        ids = tiny.encode(phrase)
        a, b = decoded_argmax(tiny.model, ids), decoded_argmax(int8.model, ids)
        same += sum(x == y for x, y in zip(a, b))
        total += len(a)
    assert same / total >= 0.97
    greedy = list(generate(int8.engine, int8.encode("san"), 20, temperature=0, eos_ids=int8.eos_ids))
    assert int8.decode(greedy) == " francisco weather is good in april?"


def test_a_tied_output_head_keeps_one_copy_shared_with_the_embedding(tiny_dir):
    """The head's weights are kept as [in, out] (an outlier feature's weights one contiguous row); the embedding
    tied to it reads that same copy, so int8 adds no second [vocab, dim] matrix, and looks tokens up as before."""
    fp32 = models.load(str(tiny_dir), "cpu", engine="torch")
    int8 = models.load(str(tiny_dir), "cpu", "int8", engine="torch")
    head = int8.model.lm_head
    assert head.weight_t.is_contiguous()
    (tied,) = [m for m in int8.model.modules() if isinstance(m, nn.Embedding)
               and m.weight.data_ptr() == head.weight_t.data_ptr()]
    (original,) = [m for m in fp32.model.modules() if isinstance(m, nn.Embedding)
                   and m.weight.shape == tied.weight.shape]
    assert torch.equal(tied.weight, original.weight)
    ids = torch.tensor([[1, 5, 9]])
    assert torch.equal(tied(ids), original(ids))


def test_int8_llama_has_four_int8_layers_a_block_and_decodes_like_fp32(smollm2_cache):
    """The loader stacks q, k, v and gate, up (fewer int8 calls a token, each with a fixed cost): 4 int8 layers a
    block and the head, and one token at a time the int8 model's next token is fp32's on real text."""
    from autocomplete.engine import llama

    directory = smollm2_cache / "models" / "smollm2-135m"
    fp32, int8 = llama.load(directory), quantize(llama.load(directory))
    layers = [m for m in int8.modules() if isinstance(m, Int8Linear)]
    assert len(layers) == 4 * len(int8.layers) + 1 and not any(type(m) is nn.Linear for m in int8.modules())
    text = ("The library opens at nine on weekdays and closes early on Sundays. Members can borrow up to ten books "
            "at a time, and most loans last three weeks. Ask at the front desk if you need help finding something.")
    ids = torch.tensor([llama_tokens(directory, text)])
    with torch.inference_mode():
        want = fp32(ids).logits[0].argmax(-1)
        out, got = int8(ids[:, :1]), []
        for i in range(1, ids.shape[1] + 1):
            got.append(out.logits[0, -1].argmax())
            if i < ids.shape[1]:
                out = int8(ids[:, i:i + 1], cache=out.cache)
    assert (torch.stack(got) == want).float().mean() >= 0.85  # about 95% over the bench's 2,719 positions


def llama_tokens(directory, text: str) -> list[int]:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(directory / "tokenizer.json")).encode(text, add_special_tokens=False).ids
