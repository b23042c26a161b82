"""The Python API gives what the command gives: the same --json records, the same streamed pieces, the same lists,
in process, from the warm server (and in process again once it has gone) and over an OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import pytest

import autocomplete
from autocomplete.errors import UserError
from autocomplete.serve import client


def without_stats(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "stats"}  # timings differ run to run


def cli_json(cli, *args: str, extra_env: dict | None = None) -> list[dict]:
    done = cli(*args, "--json", extra_env=extra_env)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


@pytest.fixture(scope="module")
def local(tiny_dir):
    return autocomplete.load(str(tiny_dir), engine="onnx", server=False)


def test_complete_is_the_command_s_record(local, cli, tiny_dir):
    done = local.complete("san", temperature=0, seed=5, style="text")
    (shown,) = cli_json(cli, "-m", str(tiny_dir), "--engine", "onnx", "--no-server", "-t", "0", "--seed", "5", "san")
    assert without_stats(done.to_json()) == without_stats(shown)
    assert done.completion == shown["completion"] and done.text == "san" + shown["completion"]
    assert done.text == "san francisco weather is good in april?" and local.engine == "onnx"


def test_stream_yields_the_command_s_pieces(local, tiny_dir):
    from autocomplete.engine import models
    from autocomplete.text.complete import complete

    params = autocomplete.Params(temperature=1.0, seed=4, stop="none", max_tokens=40, style="text")
    pieces = list(local.stream("san", params))
    printed = []
    done = complete(models.load(str(tiny_dir), "auto", "auto", "onnx"), "san",
                    params, printed.append)
    assert pieces == printed and "".join(pieces) == done.completion and len(pieces) > 1
    assert local.complete("san", params).completion == done.completion


def test_leaving_a_stream_early_stops_it(local):
    stream = local.stream("san", temperature=1.0, seed=4, stop="none", max_tokens=4000, style="text")
    first = next(stream)
    stream.close()  # the generation stops at its next token, and the model is free
    assert first and local.complete("seoul", temperature=0, style="text").completion == " subway map"


def test_suggest_is_the_command_s_list(local, cli, tiny_dir):
    found = local.suggest("san fr", n=3, words=3, style="text", seed=1)
    (shown,) = cli_json(cli, "-m", str(tiny_dir), "--engine", "onnx", "--no-server", "--suggest", "3", "--seed", "1",
                        "san fr")
    assert [s.to_json() for s in found] == shown["suggestions"]
    assert found[0].text == "san francisco" and 0 < found[0].probability <= 1


def test_explain_is_the_command_s_record(local, cli, tiny_dir):
    explained = local.explain("san fr", temperatures=[0, 2], seed=3, style="text", max_tokens=4)
    (shown,) = cli_json(cli, "-m", str(tiny_dir), "--engine", "onnx", "--no-server", "--explain", "-t", "0", "-t", "2",
                        "--seed", "3", "-n", "4", "san fr")
    assert without_stats(explained) == without_stats(shown)
    assert explained["temperatures"] == [1.0, 0.0, 2.0] and len(explained["steps"]) >= 1
    with pytest.raises(ValueError, match="temperature"):
        local.explain("san", temperatures=[-1])


def test_parameters_are_checked_as_the_options_are(local):
    with pytest.raises(ValueError, match="temperature"):
        local.complete("san", temperature=-1)
    with pytest.raises(TypeError, match="unknown parameter 'temp'"):
        local.complete("san", temp=1)
    with pytest.raises(ValueError, match="n and words"):
        local.suggest("san", n=0)
    with pytest.raises(ValueError, match="engine must be one of"):
        autocomplete.load(engine="tensorflow")
    with pytest.raises(UserError):
        autocomplete.load("/no/such/model", server=False)


def test_the_defaults_are_the_command_s():
    from dataclasses import fields

    from autocomplete.settings import GENERATION, Settings

    params, settings = autocomplete.Params(), Settings()
    assert [f.name for f in fields(params)] == list(GENERATION)
    assert params == settings.params() == params.checked()
    assert autocomplete.Params is __import__("autocomplete.settings").settings.Params  # one class, the text layer's


@pytest.fixture
def served(tiny_dir, monkeypatch):
    """A warm server for the tiny model (as `--server start` starts it), in a runtime dir of its own."""
    base = tempfile.mkdtemp(prefix="ac-api-", dir="/tmp")
    monkeypatch.setenv("AUTOCOMPLETE_RUNTIME_DIR", base)
    info = client.start(str(tiny_dir), engine="onnx", idle_timeout=600, wait=120)
    try:
        yield info
    finally:
        client.stop(str(tiny_dir), engine="onnx")
        shutil.rmtree(base, ignore_errors=True)


def test_the_warm_server_answers_when_it_serves_the_model_and_the_process_once_it_has_gone(served, local,
                                                                                             tiny_dir):
    lm = autocomplete.load(str(tiny_dir), engine="onnx")
    asked = client.status(str(tiny_dir), engine="onnx")["requests"]
    done = lm.complete("san", temperature=0, seed=5, style="text")
    assert client.status(str(tiny_dir), engine="onnx")["requests"] == asked + 1  # the server ran it
    assert without_stats(done.to_json()) == without_stats(local.complete("san", temperature=0, seed=5,
                                                                         style="text").to_json())
    assert list(lm.stream("seoul", temperature=0, style="text")) == list(local.stream("seoul", temperature=0,
                                                                                      style="text"))
    assert [s.to_json() for s in lm.suggest("san fr", n=3, style="text")] == \
        [s.to_json() for s in local.suggest("san fr", n=3, style="text")]
    assert without_stats(lm.explain("san", temperatures=[0], seed=1, style="text")) == \
        without_stats(local.explain("san", temperatures=[0], seed=1, style="text"))  # read here: no server step
    client.stop(str(tiny_dir), engine="onnx")
    assert lm.complete("seoul", temperature=0, style="text").completion == " subway map"  # in process now
    assert lm.engine == "onnx" and os.environ["AUTOCOMPLETE_RUNTIME_DIR"]


def test_over_an_openai_compatible_server_the_api_is_the_command_s(logprob_api, cli):
    lm = autocomplete.load(api=logprob_api)
    assert lm.name == "tiny-gpt2" and lm.engine is None
    done = lm.complete("san", temperature=0, seed=5, style="text")
    (shown,) = cli_json(cli, "--api", logprob_api, "-t", "0", "--seed", "5", "san")
    assert without_stats(done.to_json()) == without_stats(shown)
    assert "".join(lm.stream("san", temperature=0, seed=5, style="text")) == shown["completion"]
    found = lm.suggest("san fr", n=3, style="text")
    (listed,) = cli_json(cli, "--api", logprob_api, "--suggest", "3", "san fr")
    assert [s.to_json() for s in found] == listed["suggestions"]
    explained = lm.explain("san", temperatures=[0, 1], seed=2, style="text", max_tokens=3)
    (shown,) = cli_json(cli, "--api", logprob_api, "--explain", "-t", "0", "-t", "1", "--seed", "2", "-n", "3", "san")
    assert without_stats(explained) == without_stats(shown) and explained["steps"]
