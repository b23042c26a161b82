"""--explain's numbers (autocomplete.text.explain): distributions that sum to 1 and sharpen as the temperature drops,
and one step past the typed word."""

from __future__ import annotations

import pytest
import torch

from autocomplete.text.explain import distribution, entropy_bits, view


@pytest.fixture
def logits(tiny):
    return tiny.engine.read(tiny.encode("san"))[0]


@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.0])
def test_distribution_sums_to_one_over_the_vocabulary(logits, temperature):
    p = distribution(logits, temperature)
    assert p.shape == logits.shape
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(torch.from_numpy(p), torch.softmax(torch.from_numpy(logits) / temperature, dim=-1))


def test_lower_temperature_sharpens(tiny, logits):
    step = view(tiny, logits, int(logits.argmax()), [0.3, 2.0])
    assert step.entropy[0.3] < step.entropy[1.0] < step.entropy[2.0]
    top = step.candidates[0]
    assert top.token == int(logits.argmax())
    assert top.probability[0.3] > top.probability[1.0] > top.probability[2.0]
    assert step.entropy[1.0] == pytest.approx(entropy_bits(torch.softmax(torch.from_numpy(logits), -1).numpy()))


def test_temperature_zero_is_all_on_the_argmax(logits):
    p = distribution(logits, 0)
    assert float(p[logits.argmax()]) == 1.0 and entropy_bits(p) == 0.0


def test_next_step_is_one_step_past_the_typed_word_and_can_be_stopped(tiny):
    from autocomplete.settings import Params
    from autocomplete.text.explain import next_step

    settings = Params(style="text", temperature=0.0)
    record = next_step(tiny, "san fr", settings, top=5)
    assert record["word"]["text"].strip() == "francisco"
    assert len(record["steps"]) == 1 and record["steps"][0]["allowed_tokens"] is None
    assert record["completion"] == "ancisco" + record["steps"][0]["picked"]["text"]
    calls = []

    def check():
        calls.append(1)
        if len(calls) > 2:
            raise TimeoutError("hung up")

    with pytest.raises(TimeoutError):
        next_step(tiny, "san fr", settings, top=5, check=check)
