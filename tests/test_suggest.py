"""Suggestions: the best-first search against brute force, and its probabilities against the model's own."""

from __future__ import annotations

import json

import pytest
import torch

from autocomplete.settings import Settings
from autocomplete.suggest import normalise, suggest, word_starts


def sampler_probs(logits: torch.Tensor, s: Settings) -> torch.Tensor:
    """softmax(logits / T), then top-k, then top-p, renormalised: written out here independently of the code."""
    p = torch.softmax(logits.double() / s.temperature, dim=-1)
    if s.top_k:
        keep = torch.zeros_like(p, dtype=torch.bool)
        keep[p.topk(s.top_k).indices] = True
        p = torch.where(keep, p, 0.0) / p[keep].sum()
    if s.top_p < 1:
        values, order = p.sort(descending=True)
        before = values.cumsum(0) - values  # mass of the strictly likelier tokens
        keep = torch.zeros_like(p, dtype=torch.bool)
        keep[order[before < s.top_p]] = True
        p = torch.where(keep, p, 0.0) / p[keep].sum()
    return p


def next_probs(lm, prefix_ids, tokens, s):
    with torch.no_grad():
        logits = lm.model(torch.tensor([prefix_ids + list(tokens)])).logits[0, -1]
    return sampler_probs(logits, s)


def probability(lm, prefix, tokens, s) -> float:
    """P(the sampler writes `tokens`, then a token that starts a new word or ends the text)."""
    ids, p = lm.encode(prefix), 1.0
    for i, token in enumerate(tokens):
        p *= float(next_probs(lm, ids, tokens[:i], s)[token])
    ends = word_starts(lm, lm.model.lm_head.out_features)
    return p * float(next_probs(lm, ids, tokens, s)[ends].sum())


def brute_force(lm, prefix, s, n, words):
    """Every token sequence, scored, filtered and merged like suggestions: a plain depth-first walk of the token
    tree. A branch is cut only when its probability so far is below the n-th best score found: every sequence
    under it scores at most that, so nothing it holds could enter the top n."""
    ids = lm.encode(prefix)
    ends = word_starts(lm, lm.model.lm_head.out_features)
    found = {}

    def nth_best() -> float:
        scores = sorted((v[0] for v in found.values()), reverse=True)
        return scores[n - 1] if len(scores) >= n else 0.0

    def walk(tokens, p):
        assert len(tokens) < 40, "the walk should end long before this"
        probs = next_probs(lm, ids, tokens, s)
        text = lm.decode(list(tokens))
        if any(c.isalnum() for c in text) and not text.endswith("\ufffd"):
            score = p * float(probs[ends].sum())
            key = normalise(text)
            if score > found.get(key, (0, None))[0]:
                found[key] = (score, list(tokens))
        for token in torch.nonzero(probs).flatten().tolist():
            child = tokens + (token,)
            child_text = lm.decode(list(child))
            if token in lm.eos_ids or "\n" in child_text or len(child_text.split()) > words:
                continue
            if p * float(probs[token]) >= nth_best():
                walk(child, p * float(probs[token]))

    walk((), 1.0)
    return sorted(found.values(), key=lambda v: -v[0])[:n]


# The tiny tokenizer cuts words into several tokens, so brute force must go deep; a small top-k keeps it small.
@pytest.mark.parametrize("prefix, top_k, temperature", [("san", 2, 1.0), ("seoul", 3, 1.0), ("new", 3, 0.7)])
def test_search_finds_exactly_what_brute_force_finds(tiny, prefix, top_k, temperature):
    s = Settings(temperature=temperature, top_k=top_k, top_p=1.0)
    expected = brute_force(tiny, prefix, s, n=5, words=2)
    assert len(expected) == 5
    got = suggest(tiny, prefix, s, n=5, words=2)
    assert [g.tokens for g in got] == [tokens for _, tokens in expected]
    assert [g.probability for g in got] == pytest.approx([p for p, _ in expected], rel=1e-4)


def test_probabilities_are_the_models_under_default_settings(tiny):
    s = Settings()  # temperature 0.7, top-k 50, top-p 0.95
    got = suggest(tiny, "san", s, n=4, words=3)
    assert got and all(0 < g.probability <= 1 for g in got)
    assert [g.probability for g in got] == sorted((g.probability for g in got), reverse=True)
    for g in got:
        assert g.probability == pytest.approx(probability(tiny, "san", g.tokens, s), rel=1e-4)
        assert g.completion == tiny.decode(g.tokens)
    assert got[0].completion == " francisco"


def test_case_and_space_variants_are_merged():
    assert normalise(" San  Francisco") == normalise("san francisco")


def test_cli_json_and_each_line(cli, tiny_dir):
    result = cli("-m", str(tiny_dir), "--suggest", "3", "--json", "-t", "1", "--each-line", input=b"san\nseoul\n")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [r["prefix"] for r in records] == ["san", "seoul"]
    for r in records:
        probs = [s["probability"] for s in r["suggestions"]]
        assert 0 < len(probs) <= 3 and all(0 < p <= 1 for p in probs) and probs == sorted(probs, reverse=True)
        for s in r["suggestions"]:
            assert s["text"] == r["prefix"] + s["completion"] and s["tokens"]
        assert r["model"] == str(tiny_dir) and r["settings"]["words"] == 3
    assert records[0]["suggestions"][0]["completion"] == " francisco"


def test_cli_table(cli, tiny_dir):
    result = cli("-m", str(tiny_dir), "--suggest", "2", "-t", "1", "san")
    rows = result.stdout.decode().splitlines()
    assert len(rows) == 2 and rows[0].startswith("san francisco") and rows[0].endswith("%")


def test_repl_suggest_command(cli, tiny_dir):
    result = cli("-m", str(tiny_dir), "-t", "1", "-i", input=b"/suggest 2\nsan\n/suggest off\n/temp 0\nseoul\n")
    rows = result.stdout.decode().splitlines()
    assert rows[0].startswith("san francisco") and rows[0].endswith("%") and len(rows) == 3
    assert rows[2] == "seoul subway map"
