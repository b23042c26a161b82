"""The loop against transformers' own generate() and against the math: softmax(logits / T). `tiny` is the tiny
GPT-2 on each engine (ONNX Runtime and torch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autocomplete.text.sample import generate, new_seed, probabilities, warp

PROMPTS = ["san", "seoul", "the best way to learn python is", "서울", "new york", "xyz q"]


def hf_greedy(hf_model, ids, n, eos):
    out = hf_model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=n, pad_token_id=eos)
    return out[0, len(ids):].tolist()


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_equals_transformers_generate(tiny_fp32, hf_tiny, prompt):
    """fp32 is exact: either engine and our loop give generate()'s tokens."""
    ids = tiny_fp32.encode(prompt)
    ours = list(generate(tiny_fp32.engine, ids, 20, temperature=0, eos_ids=tiny_fp32.eos_ids))
    assert ours == hf_greedy(hf_tiny, ids, 20, tiny_fp32.tokenizer.eos_token_id)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_compact_gpt2_logits_match_transformers(tiny_torch, hf_tiny, prompt):
    ids = torch.tensor([tiny_torch.encode(prompt)])
    with torch.no_grad():
        ours, theirs = tiny_torch.model(ids).logits, hf_tiny(ids).logits
    assert type(tiny_torch.model).__module__ == "autocomplete.engine.gpt2"
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=0)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_each_engine_reads_a_prompt_as_transformers_does(tiny_fp32, hf_tiny, prompt):
    """The last position's logits, read in one go and then token by token, equal transformers' to 1e-4."""
    ids = tiny_fp32.encode(prompt)
    with torch.no_grad():
        theirs = hf_tiny(torch.tensor([ids])).logits[0].numpy()
    logits, state = tiny_fp32.engine.read(ids[:1], room=len(ids))
    np.testing.assert_allclose(logits, theirs[0], atol=1e-4, rtol=0)
    for i, token in enumerate(ids[1:], start=1):
        np.testing.assert_allclose(tiny_fp32.engine.extend(state, token), theirs[i], atol=1e-4, rtol=0)
    assert tiny_fp32.engine.length(state) == len(ids)
    logits, _ = tiny_fp32.engine.read(ids)
    np.testing.assert_allclose(logits, theirs[-1], atol=1e-4, rtol=0)


def test_greedy_memorised_phrase(tiny):
    ids = list(generate(tiny.engine, tiny.encode("san"), 20, temperature=0, eos_ids=tiny.eos_ids))
    assert tiny.decode(ids) == " francisco weather is good in april?"
    assert ids[-1] in tiny.eos_ids  # stopped at the end-of-text token, and yielded it


def test_temperature_zero_ignores_top_k_top_p_and_seed(tiny):
    ids = tiny.encode("new york")
    runs = {tuple(generate(tiny.engine, ids, 12, temperature=0, top_k=k, top_p=p,
                           rng=np.random.default_rng(s)))
            for k, p, s in [(0, 1.0, 1), (5, 0.5, 2), (50, 0.9, 3)]}
    assert runs == {tuple(generate(tiny.engine, ids, 12, temperature=0))}


def test_same_seed_same_tokens_other_seed_differs(tiny):
    ids = tiny.encode("xyz")

    def sample(seed):
        return list(generate(tiny.engine, ids, 30, temperature=1.5, rng=np.random.default_rng(seed)))

    assert sample(7) == sample(7)
    assert len({tuple(sample(s)) for s in range(5)}) > 1


def first_token_logits(lm, ids):
    return torch.from_numpy(lm.engine.read(ids)[0])


def chi_square(counts: torch.Tensor, probs: torch.Tensor, bins: list[torch.Tensor]) -> float:
    """Pearson's statistic over the given bins of the vocabulary."""
    n = float(counts.sum())
    return sum(float((counts[b].sum() - n * probs[b].sum()) ** 2 / (n * probs[b].sum())) for b in bins)


def chi_square_critical(df: int, z: float = 3.719) -> float:
    """The chi-square value exceeded with probability ~1e-4 (z = 3.719), by Wilson and Hilferty's approximation."""
    return df * (1 - 2 / (9 * df) + z * (2 / (9 * df)) ** 0.5) ** 3


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_sampling_follows_softmax_of_logits_over_t(tiny, temperature):
    ids = tiny.encode("san")
    expected = torch.softmax(first_token_logits(tiny, ids) / temperature, dim=-1)
    rng = np.random.default_rng(1234)
    n = 3000
    counts = torch.zeros_like(expected)
    for _ in range(n):
        counts[next(generate(tiny.engine, ids, 1, temperature=temperature, rng=rng))] += 1
    # A goodness-of-fit test: every token expected at least 5 times is its own bin, the long tail of rarer
    # tokens one bin together (a per-token comparison of a tail of hundreds of rare tokens is all noise).
    common = torch.nonzero(expected * n >= 5).flatten()
    bins = [common[i:i + 1] for i in range(len(common))]
    tail = torch.nonzero(expected * n < 5).flatten()
    if float(expected[tail].sum()) * n >= 5:
        bins.append(tail)
    assert len(bins) >= 3
    critical = chi_square_critical(len(bins) - 1)
    assert chi_square(counts, expected, bins) < critical
    for other in {0.5, 1.0, 2.0} - {temperature}:  # and the test can tell the temperatures apart
        wrong = torch.softmax(first_token_logits(tiny, ids) / other, dim=-1)
        assert chi_square(counts, wrong, bins) > critical


def test_top_k_samples_only_the_k_likeliest(tiny):
    ids = tiny.encode("xyz")
    top3 = set(first_token_logits(tiny, ids).topk(3).indices.tolist())
    rng = np.random.default_rng(0)
    seen = {next(generate(tiny.engine, ids, 1, temperature=3.0, top_k=3, rng=rng)) for _ in range(300)}
    assert seen == top3


def test_top_p_samples_only_the_nucleus(tiny):
    ids = tiny.encode("xyz")
    probs = torch.softmax(first_token_logits(tiny, ids), dim=-1)
    sorted_probs, order = probs.sort(descending=True)
    # the smallest set of likeliest tokens whose probability reaches 0.5
    size = int((sorted_probs.cumsum(0) < 0.5).sum()) + 1
    nucleus = set(order[:size].tolist())
    rng = np.random.default_rng(0)
    seen = {next(generate(tiny.engine, ids, 1, temperature=1.0, top_p=0.5, rng=rng)) for _ in range(400)}
    assert seen <= nucleus and len(seen) == len(nucleus)


def test_prompt_forward_computes_last_position_logits_only(tiny_torch):
    shapes = []
    hook = tiny_torch.model.lm_head.register_forward_hook(lambda module, args, out: shapes.append(tuple(out.shape)))
    try:
        list(generate(tiny_torch.engine, tiny_torch.encode("the best way to learn python is"), 3, temperature=0))
    finally:
        hook.remove()
    assert [s[1] for s in shapes] == [1, 1, 1]  # and no forward after the last token: it isn't read


@pytest.mark.parametrize("k, p", [(1, 1.0), (5, 1.0), (50, 1.0), (0, 0.5), (0, 0.95), (0, 0.999), (40, 0.9),
                                  (500, 0.3)])
def test_top_k_top_p_equal_transformers_warpers(k, p):
    """Our few lines of top-k / top-p against transformers' own processors, the reference: equal results on random
    logits (with ties and -inf among them), at several temperatures."""
    from transformers import LogitsProcessorList, TopKLogitsWarper, TopPLogitsWarper

    generator = torch.Generator().manual_seed(k * 1000 + int(p * 1000))
    for temperature in (0.5, 1.0, 1.7):
        logits = torch.randn(3, 400, generator=generator) * 4
        logits[0, :10] = logits[0, 10]  # ties
        logits[1, ::7] = float("-inf")  # tokens already ruled out (token healing)
        processors = LogitsProcessorList(([TopKLogitsWarper(k)] if k else []) + ([TopPLogitsWarper(p)] if p < 1 else []))
        expected = processors(None, logits / temperature)
        got = torch.from_numpy(warp(logits.numpy(), temperature, k, p))
        assert torch.equal(got.isinf(), expected.isinf())
        # equal up to a constant per row (ours are shifted so the largest is 0): the same softmax
        assert torch.allclose(got.softmax(-1), expected.softmax(-1), atol=1e-7)


@pytest.mark.parametrize("temperature", [1e-39, 1e-30, 1e-8])
def test_a_tiny_temperature_is_greedy_not_nan(tiny, temperature):
    """softmax(logits / T) as T -> 0 is the argmax; float32 overflowed at T = 1e-39 (inf / inf = NaN)."""
    logits = torch.randn(2, 300, generator=torch.Generator().manual_seed(0)) * 5
    probs = torch.from_numpy(probabilities(logits.numpy(), temperature))
    assert torch.equal(probs, torch.nn.functional.one_hot(logits.argmax(-1), 300).float())
    ids = tiny.encode("new york")
    sampled = generate(tiny.engine, ids, 12, temperature=temperature, rng=np.random.default_rng(1))
    assert list(sampled) == list(generate(tiny.engine, ids, 12, temperature=0))


@pytest.mark.parametrize("p", [0.5, 0.9, 0.95, 0.999])
def test_top_p_over_a_large_vocabulary_equals_the_full_sort(p, monkeypatch):
    """Over 49k tokens only the likeliest are sorted (autocomplete.text.sample._HEAD); the tokens kept are those a
    sort of the whole row keeps, on peaked and flat rows, with ties, and after top-k."""
    from autocomplete.text import sample

    rng = np.random.default_rng(int(p * 1000))
    rows = [rng.standard_normal(49152).astype(np.float32) * scale for scale in (0.5, 2.0, 6.0)]
    rows[1][:3000] = rows[1][3000]  # a tie among the likeliest
    rows.append(sample.keep_top_k(rows[2], 50))  # what top-k leaves: 50 finite, the rest -inf
    fast = [sample.keep_top_p(row, p) for row in rows]
    monkeypatch.setattr(sample, "_HEAD", 10**9)  # the whole row sorted
    for row, got in zip(rows, fast):
        assert np.array_equal(np.isinf(got), np.isinf(sample.keep_top_p(row, p)))


@pytest.mark.parametrize("k", [1, 7, 50, 64, 300, 49152, 60000])
def test_kth_largest_equals_numpys_partition(k):
    """The k-th largest of a large vocabulary is found among its likeliest blocks (autocomplete.text.sample._BLOCK):
    it equals np.partition's on peaked and flat rows, a row of ties, rows with -inf and a tail past the last whole
    block, and with k past the row's size."""
    from autocomplete.text.sample import kth_largest

    rng = np.random.default_rng(k)
    rows = [rng.standard_normal(49152).astype(np.float32) * scale for scale in (0.5, 6.0)]
    rows.append(np.full(50257, 1.5, dtype=np.float32))  # every value tied
    tail = rng.standard_normal(50257).astype(np.float32)
    tail[-17:] = 40.0  # the largest past the last whole block
    rows.append(tail)
    holes = rng.standard_normal(49152).astype(np.float32)
    holes[rng.random(49152) < 0.9] = -np.inf
    holes[:4096] = -np.inf  # whole blocks of -inf
    rows.append(holes)
    steps = np.repeat(rng.standard_normal(768).astype(np.float32), 64)  # each block one value: ties across blocks
    rows.append(steps)
    for row in rows:
        expected = np.partition(row, -min(k, row.size))[-min(k, row.size)]
        assert kth_largest(row, k) == expected


def test_a_new_seed_fits_a_signed_32_bit_int():
    """Servers over --api take a signed 32-bit seed; in process and over --api the seed is made one way."""
    seeds = {new_seed() for _ in range(64)}
    assert all(0 <= seed < 2**31 for seed in seeds) and len(seeds) > 1
