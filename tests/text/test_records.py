"""A completion's record (what --json shows, what a warm server sends back) reads back as the same completion."""

import json

from autocomplete.settings import Params
from autocomplete.text.records import Completion, from_record, record


def _completion(**change):
    c = dict(prompt="san", completion=" francisco 🙂", tokens=[5, 6, 7], finish_reason="stop", prompt_tokens=2,
             seed=42, time_to_first_token=0.0123456, tokens_per_second=61.23456, style="query")
    return Completion(**{**c, **change})


def test_a_record_round_trips_through_json():
    c = _completion()
    r = json.loads(json.dumps(record(c, "smollm2-135m", Params(temperature=0.5), engine="onnx")))
    assert r["settings"]["seed"] == 42 and r["settings"]["temperature"] == 0.5
    assert "examples" not in r["settings"]
    assert r["stats"] == {"prompt_tokens": 2, "completion_tokens": 3, "time_to_first_token_s": 0.0123,
                          "tokens_per_second": 61.2346}
    back = from_record(r)
    assert (back.prompt, back.completion, back.tokens, back.seed, back.style) == (
        c.prompt, c.completion, c.tokens, c.seed, c.style)


def test_over_the_api_the_count_travels_without_the_ids():
    c = _completion(tokens=None, completion_tokens=9, time_to_first_token=None, tokens_per_second=None)
    r = record(c, "remote", Params())
    assert r["engine"] is None and r["tokens"] is None and r["stats"]["completion_tokens"] == 9
    assert from_record(r).token_count == 9


def test_interrupted_is_a_finish_reason():
    assert _completion(finish_reason="interrupted").interrupted
    assert not _completion().interrupted
