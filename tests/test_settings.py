"""The option table: every surface made from it (Settings, the server's request schema, the config keys) agrees."""

import math

import pytest

from autocomplete import config, settings
from autocomplete.settings import GENERATION, OPTION, OPTIONS, Params, Settings


def test_every_option_is_a_field_spelled_once():
    flags = [flag for spec in OPTIONS for flag in spec.flags]
    assert len(flags) == len(set(flags))
    assert all(spec.dest in Settings.__dataclass_fields__ for spec in OPTIONS)
    assert all(any(f.startswith("--") for f in spec.flags) for spec in OPTIONS)


def test_kinds_come_from_the_field_types():
    assert OPTION["temperature"].kind is float
    assert OPTION["max_tokens"].kind is int
    assert OPTION["explain"].kind == "flag"
    assert OPTION["stop"].kind == settings.STOP_RULES
    assert OPTION["model"].kind is str


def test_config_keys_are_the_options_marked_for_it():
    assert set(config.KEYS) == {spec.dest for spec in OPTIONS if spec.in_config}
    assert "seed" not in config.KEYS and "temperature" in config.KEYS


@pytest.mark.parametrize("name, value, needle", [
    ("temperature", -1.0, "temperature must be"),
    ("temperature", math.nan, "temperature must be"),
    ("top_p", 0.0, "top-p must be"),
    ("top_k", -3, "top-k must be"),
    ("max_tokens", 0, "max-tokens must be"),
    ("max_tokens", 100_000, "max-tokens must be"),
    ("seed", -1, "seed must be"),
    ("seed", 2**64, "seed must be"),
    ("stop", "paragraph", "stop must be one of sentence, line, none"),
    ("idle_timeout", -1.0, "must be 0 or more"),
    ("examples", [], "examples must be"),
])
def test_checks_say_what_is_wrong(name, value, needle):
    with pytest.raises(ValueError, match=needle):
        settings.check(name, value)


def test_a_request_takes_the_generation_fields_and_defaults_the_rest():
    s = Params.from_request({"temperature": 1, "stop": "line", "seed": 7, "examples": ["a b", "c d"]})
    assert (s.temperature, s.stop, s.seed, s.examples) == (1.0, "line", 7, ("a b", "c d"))
    assert isinstance(s.temperature, float)
    assert s.top_k == Settings().top_k
    assert set(s.wire()) == set(GENERATION) and s.wire()["examples"] == ["a b", "c d"]
    assert Params.from_request(s.wire()) == s  # what a client sends is what the server reads


@pytest.mark.parametrize("raw, needle", [
    ([], "JSON object"),
    ({"model": "gpt2"}, "unknown setting"),
    ({"temperature": "hot"}, "wrong type"),
    ({"max_tokens": True}, "wrong type"),
    ({"max_tokens": 2.5}, "wrong type"),
    ({"top_p": 2.0}, "top-p must be"),
    ({"seed": -1}, "seed must be"),
])
def test_a_bad_request_is_refused_with_a_reason(raw, needle):
    with pytest.raises(ValueError, match=needle):
        Params.from_request(raw)


def test_int8_means_the_cpu_only_when_the_device_is_left_to_us():
    assert settings.runs_on("auto", "int8") == "cpu"
    assert settings.runs_on("cuda", "int8") == "cuda"
    assert settings.runs_on("auto", "fp32") == "auto"
    assert Settings(precision="int8").placement().device == "cpu"
