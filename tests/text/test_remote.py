"""--suggest over --api, the parts that need no engine: the word being typed, the healing rule on text, the two
logprobs shapes engines send, and the reshaping of listed log-probabilities checked against the in-process
sampler's distribution (when the list is the whole vocabulary, they must agree)."""

from __future__ import annotations

import math

import pytest
import torch

from autocomplete.text.remote import allowed, alternatives, reshape, spelled, typed_word
from autocomplete.settings import Params
from autocomplete.text.sample import probabilities


def test_the_word_being_typed():
    assert typed_word("stock mar") == ("stock", " mar")
    assert typed_word("san ") == ("san", " ")
    assert typed_word("q\nlas veg") == ("q\nlas", " veg")
    assert typed_word("mar") == ("mar", "")  # nothing before it to start from


def test_a_long_typed_word_is_spelled_again_from_its_last_characters_only():
    """Healing over --api costs a request per token: a 5,000-character "word" must not cost thousands."""
    from autocomplete.text.remote import MAX_TYPED

    text = "see " + "ab" * 2500
    kept, typed = typed_word(text)
    assert kept + typed == text and len(typed) == MAX_TYPED


def test_healing_on_text():
    assert allowed("", " market", " mar", fold=False) and allowed("", " m", " mar", fold=False)
    assert not allowed("", " mat", " mar", fold=False) and not allowed("", "", " mar", fold=False)
    assert allowed(" m", "arket", " mar", fold=False) and not allowed(" m", "ore", " mar", fold=False)
    assert allowed("", " Vegas", " veg", fold=True) and not allowed("", " Vegas", " veg", fold=False)
    assert spelled(" market", " mar", fold=False) and not spelled(" ma", " mar", fold=False)
    assert allowed(" market", "anything", " mar", fold=False)  # spelled: anything goes


def test_both_logprobs_shapes():
    legacy = {"logprobs": {"tokens": [" a"], "top_logprobs": [{" a": -0.1, " b": -2.5, "\n": -3.0}]}}
    content = {"logprobs": {"content": [{"token": " a", "logprob": -0.1, "top_logprobs": [
        {"token": " b", "logprob": -2.5}, {"token": " a", "logprob": -0.1}, {"token": "\n", "logprob": -3.0}]}]}}
    assert alternatives(legacy) == alternatives(content) == [(" a", -0.1), (" b", -2.5), ("\n", -3.0)]
    assert alternatives({"logprobs": None}) is None and alternatives({}) is None


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, 0, 1.0), (0.7, 0, 1.0), (1.3, 0, 1.0), (0.7, 5, 1.0),
                                                       (0.7, 0, 0.8), (1.0, 7, 0.9), (0.0, 0, 1.0)])
def test_reshape_agrees_with_the_sampler_when_every_token_is_listed(temperature, top_k, top_p):
    torch.manual_seed(3)
    logits = torch.randn(1, 40) * 2
    settings = Params(temperature=temperature, top_k=top_k, top_p=top_p)
    expected = probabilities(logits.numpy(), temperature, top_k, top_p)[0]
    logprobs = torch.log_softmax(logits[0], -1)
    listed = sorted(((str(i), float(lp)) for i, lp in enumerate(logprobs)), key=lambda pair: -pair[1])
    got = dict(reshape(listed, settings))
    for token in range(40):
        assert math.isclose(got.get(str(token), 0.0), float(expected[token]), abs_tol=1e-5), token
