"""One completion: context-window truncation, finish reasons, stats, Ctrl-C keeping what was generated."""

from __future__ import annotations

import dataclasses

import pytest

from autocomplete.text.complete import complete
from autocomplete.text.prompt import fit_to_context
from autocomplete.text.sample import generate
from autocomplete.text.prompt import prepare
from autocomplete.text.word import start
from autocomplete.settings import Params

GREEDY = Params(temperature=0, max_tokens=20, stop="none", style="text")


@pytest.mark.parametrize(
    "ids, context, max_new, bos, expected",
    [
        ([1, 2, 3], 10, 4, None, ([1, 2, 3], 4)),
        (list(range(10)), 8, 3, None, ([5, 6, 7, 8, 9], 3)),
        ([0, 1, 2, 3, 4, 5, 6], 6, 2, 0, ([0, 4, 5, 6], 2)),  # a leading BOS survives truncation
        ([1, 2, 3], 4, 100, None, ([3], 3)),  # max_new is capped so one prompt token still fits
    ],
)
def test_fit_to_context(ids, context, max_new, bos, expected):
    assert fit_to_context(ids, context, max_new, bos) == expected


def test_completion_pieces_join_to_completion(tiny):
    pieces = []
    done = complete(tiny, "san", GREEDY, pieces.append)
    assert "".join(pieces) == done.completion == " francisco weather is good in april?"
    assert done.finish_reason == "eos"
    assert done.tokens[-1] in tiny.eos_ids
    assert done.prompt_tokens == len(tiny.encode("san"))
    assert done.time_to_first_token > 0 and done.tokens_per_second > 0


def test_length_limit(tiny):
    """--max-tokens counts the new tokens past the ones that spell the typed word again (token healing)."""
    done = complete(tiny, "san", Params(temperature=0, max_tokens=2, stop="none", style="text"), lambda piece: None)
    spelled = len(tiny.encode("san"))  # the whole prompt is the word being typed
    assert done.finish_reason == "length" and len(done.tokens) == 2 + spelled
    assert "san" + done.completion == tiny.decode(done.tokens)


def test_prompt_longer_than_context_keeps_its_end(tiny, capsys):
    prompt = "seoul subway map " * 40 + "san"  # far over the tiny model's 64 positions
    assert len(tiny.encode(prompt)) > tiny.context_length
    done = complete(tiny, prompt, GREEDY, lambda piece: None)
    read = prepare(tiny, prompt, "text", None, 20, quiet=True)
    assert len(read.ids) + read.max_new <= tiny.context_length and read.max_new >= 20
    ids = tiny.encode(prompt)
    assert read.healing.text in (" san", "san")  # the tiny vocabulary has no " san": it may keep the space
    typed = next(k for k in range(1, 5) if tiny.decode(ids[-k:]) == read.healing.text)  # the word's tokens
    assert read.ids == ids[:-typed][-len(read.ids):]  # the end of the prompt, before the word being typed
    word = start(tiny, read).given  # the typed word finished as a whole, then greedy from the end of the prompt
    assert tiny.decode(word).startswith(read.healing.text)
    assert done.tokens == word + list(generate(tiny.engine, read.ids + word, read.max_new - len(word),
                                               temperature=0, eos_ids=tiny.eos_ids))
    assert done.prompt_tokens == len(read.ids) + typed
    err = capsys.readouterr().err
    assert "keeping its last" in err and len(err.strip().splitlines()) == 1


def test_a_prompt_far_past_the_window_is_tokenized_from_its_end_only(tiny, capsys, monkeypatch):
    """A text CHARS_PER_TOKEN times the window or longer: only its end is tokenized, and what is read is what
    tokenizing all of it would keep."""
    import autocomplete.text.prompt as prompt_module

    prompt = "weather tomorrow in london " * 120 + "san"
    assert len(prompt) > prompt_module.CHARS_PER_TOKEN * tiny.context_length
    encoded = []
    real = tiny.encode
    monkeypatch.setattr(tiny, "encode", lambda text, **kw: encoded.append(len(text)) or real(text, **kw))
    read = prepare(tiny, prompt, "text", None, 20)
    assert encoded == [prompt_module.CHARS_PER_TOKEN * tiny.context_length]
    monkeypatch.setattr(prompt_module, "CHARS_PER_TOKEN", len(prompt))  # now tokenized whole
    assert prepare(tiny, prompt, "text", None, 20, quiet=True).ids == read.ids
    err = capsys.readouterr().err
    assert "The prompt is over" in err and "keeping its last" in err


def test_ctrl_c_keeps_what_was_generated(tiny):
    pieces = []

    def interrupt_after_two(piece):
        pieces.append(piece)
        if len(pieces) == 2:
            raise KeyboardInterrupt

    done = complete(tiny, "san", GREEDY, interrupt_after_two)
    assert done.interrupted
    assert done.completion.startswith(" francisco weather")
    assert "".join(pieces) == done.completion


def test_seed_is_reported_and_reproduces(tiny):
    sampled = Params(temperature=1.5, top_k=0, top_p=1.0, max_tokens=15, stop="none", style="text")
    first = complete(tiny, "xyz", sampled, lambda piece: None)
    again = complete(tiny, "xyz", dataclasses.replace(sampled, seed=first.seed), lambda piece: None)
    assert again.tokens == first.tokens
