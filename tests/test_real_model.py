"""On the real pip-shipped SmolLM2-135M-Instruct: a real model says real things, and the offline paths work."""

from __future__ import annotations

import json
import signal
import socket
import subprocess

import pytest

from conftest import console_script
from ptyrun import PtySession

FRANCE = "The capital of France is"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once the socket is closed


def test_capital_of_france_is_paris(cli, smollm2_cache):
    result = cli("-m", "smollm2-135m", "-t", "0", "--json", FRANCE,
                 extra_env={"AUTOCOMPLETE_CACHE_DIR": str(smollm2_cache)})
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["completion"].startswith(" Paris")
    assert record["model"] == "smollm2-135m"
    assert record["finish_reason"] == "stop"  # the sentence ended


def test_default_model_falls_back_offline(cli, smollm2_cache):
    result = cli("-t", "0", FRANCE, extra_env={"AUTOCOMPLETE_CACHE_DIR": str(smollm2_cache)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith(FRANCE + " Paris")
    err = result.stderr.decode().strip().splitlines()
    assert len(err) == 1 and "smollm2-135m" in err[0] and "HF_HUB_OFFLINE is set" in err[0]
    assert "AUTOCOMPLETE_MODEL=smollm2-135m" in err[0]  # how to make the choice permanent
    again = cli("-t", "0", FRANCE, extra_env={"AUTOCOMPLETE_CACHE_DIR": str(smollm2_cache)})
    assert again.stdout == result.stdout and again.stderr == b""  # said once


def test_default_model_falls_back_when_the_hub_is_unreachable(cli, smollm2_cache):
    env = {"AUTOCOMPLETE_CACHE_DIR": str(smollm2_cache), "HF_HUB_OFFLINE": "0",
           "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    result = cli("-t", "0", "--only-new", FRANCE, extra_env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith(" Paris")
    assert "can't be reached" in result.stderr.decode() and "smollm2-135m" in result.stderr.decode()
    # a model the user named is never substituted
    named = cli("-m", "gpt2", "-t", "0", FRANCE, extra_env=env)
    assert named.returncode == 1 and b"can't be reached" in named.stderr and named.stdout == b""


def test_gguf_file_is_converted_once(cli, smollm2_gguf, tmp_path):
    env = {"AUTOCOMPLETE_CACHE_DIR": str(tmp_path / "cache")}
    exports = tmp_path / "cache" / "onnx"
    before = set(exports.glob("*/model.onnx"))  # the tiny model's, which every test's cache starts with
    first = cli("-m", str(smollm2_gguf), "-t", "0", "--only-new", FRANCE, extra_env=env)
    assert first.returncode == 0, first.stderr
    # One line for each step that takes the time; transformers' per-tensor progress bar is not shown.
    (converted,) = (tmp_path / "cache" / "gguf").iterdir()
    assert first.stderr.decode().splitlines() == [
        f"Converting {smollm2_gguf.name} to safetensors (once; about half a minute)…",
        f"Preparing {smollm2_gguf} for ONNX Runtime (int8; once, under a minute)…"]
    assert first.stdout.decode().startswith(" Paris")
    assert (converted / "model.safetensors").is_file()
    (exported,) = set(exports.glob("*/model.onnx")) - before
    stamps = [(converted / "model.safetensors").stat().st_mtime_ns, exported.stat().st_mtime_ns]
    second = cli("-m", str(smollm2_gguf), "-t", "0", "--only-new", FRANCE, extra_env=env)
    assert second.stdout == first.stdout and second.stderr == b""
    # loaded, not converted or exported again
    assert [(converted / "model.safetensors").stat().st_mtime_ns, exported.stat().st_mtime_ns] == stamps


def test_ctrl_c_keeps_streamed_text_and_exits_130(env, smollm2_cache):
    proc = subprocess.Popen(
        [console_script(), "-m", "smollm2-135m", "--seed", "1", "--stop", "none", "-n", "500", "Once upon a time"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**env, "AUTOCOMPLETE_CACHE_DIR": str(smollm2_cache)})
    shown = proc.stdout.read(len("Once upon a time") + 10)  # streaming has begun
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    text = (shown + rest).decode()
    assert text.startswith("Once upon a time") and text.endswith("\n") and len(text) > 26
    assert b"Traceback" not in err


def test_ctrl_c_in_the_repl_stops_the_completion_and_keeps_the_session(env, smollm2_cache):
    session = PtySession([console_script(), "-m", "smollm2-135m", "--seed", "1", "--stop", "none", "-n", "500"],
                         {**env, "TERM": "xterm", "AUTOCOMPLETE_CACHE_DIR": str(smollm2_cache)})
    try:
        session.expect(">")
        session.send("Once upon a time\r")
        session.expect("Once upon a time")  # the line as typed
        session.expect("Once upon a time")  # the completion's start: the prompt, then streamed words
        session.expect(" ")
        session.expect(" ")
        session.send("\x03")
        session.expect(">")
        session.send("/max 3\r")
        session.expect(">")
        session.send(FRANCE + "\r")
        session.expect(FRANCE + " Paris")
        session.expect("\n>")  # a fresh prompt after the completion
        assert session.leave() == 0
    finally:
        session.close()
    assert "Traceback" not in session.screen


def test_suggest_on_a_real_model(cli, smollm2_cache):
    result = cli("-m", "smollm2-135m", "--suggest", "5", FRANCE, extra_env={"AUTOCOMPLETE_CACHE_DIR": str(smollm2_cache)})
    assert result.returncode == 0, result.stderr
    rows = result.stdout.decode().splitlines()
    assert len(rows) == 5 and rows[0].split("  ")[0].strip() == FRANCE + " Paris"
    # In the text style "Paris." is "Paris" followed by a word boundary, counted once (it was listed at 199.8%)
    text = cli("-m", "smollm2-135m", "--suggest", "5", "--style", "text", "--json", FRANCE,
               extra_env={"AUTOCOMPLETE_CACHE_DIR": str(smollm2_cache)})
    found = json.loads(text.stdout)["suggestions"]
    assert found[0]["completion"] == " Paris" and all(0 < s["probability"] <= 1 + 1e-6 for s in found), found


# --- the search box: the default style on the starter model ---------------------------------------------------


def test_mid_word_query_is_completed_from_the_typed_letters(cli, smollm2_cache):
    env = {"AUTOCOMPLETE_CACHE_DIR": str(smollm2_cache), "AUTOCOMPLETE_STYLE": ""}  # the default: auto
    result = cli("-t", "0", "san fra", extra_env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert out.startswith("san francisco") and out.count("\n") == 1
    text = cli("--style", "text", "-t", "0", "The capital of Fra", extra_env=env)
    assert text.stdout.decode().startswith("The capital of France")


def test_a_short_prompt_gives_one_query_and_prose_runs_as_text(cli, smollm2_cache):
    env = {"AUTOCOMPLETE_CACHE_DIR": str(smollm2_cache), "AUTOCOMPLETE_STYLE": ""}
    for seed in ("1", "2"):
        record = json.loads(cli("--json", "--seed", seed, "san", extra_env=env).stdout)
        assert record["style"] == "query" and record["completion"] and "\n" not in record["completion"]
        assert record["finish_reason"] in ("stop", "eos")  # the query ended, not the token budget
    prose = b"Dear team,\nthe quarterly numbers are in and they look better than we feared. In short, the"
    record = json.loads(cli("--json", "-t", "0", input=prose, extra_env=env).stdout)
    assert record["style"] == "text" and record["completion"]


def test_suggestions_are_whole_queries_that_complete_the_typed_word(cli, smollm2_cache):
    env = {"AUTOCOMPLETE_CACHE_DIR": str(smollm2_cache), "AUTOCOMPLETE_STYLE": ""}
    record = json.loads(cli("--suggest", "5", "--json", "san fra", extra_env=env).stdout)
    texts = [s["text"] for s in record["suggestions"]]
    assert record["style"] == "query" and len(texts) == 5 and len(set(texts)) == 5
    assert all(t.startswith("san fra") and "\n" not in t for t in texts)
    assert texts[0].startswith("san francisco")
    probabilities = [s["probability"] for s in record["suggestions"]]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-6


@pytest.mark.parametrize("prompt", ["서울 날", "i love pizza 🍕", "café crè"])
def test_streamed_text_equals_the_final_text_with_healing(cli, smollm2_cache, prompt):
    env = {"AUTOCOMPLETE_CACHE_DIR": str(smollm2_cache), "AUTOCOMPLETE_STYLE": ""}
    shown = cli("-t", "0", prompt, extra_env=env)
    record = json.loads(cli("-t", "0", "--json", prompt, extra_env=env).stdout)
    assert shown.stdout.decode() == prompt + record["completion"] + "\n"


def test_a_gguf_tokenizer_comes_from_the_file_alone(cli, smollm2_gguf, tiny_dir, tmp_path):
    """Files lying beside a .gguf (here another model's tokenizer and config) are not read in its place."""
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / smollm2_gguf.name).symlink_to(smollm2_gguf)
    for decoy in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        if (tiny_dir / decoy).exists():
            (folder / decoy).write_bytes((tiny_dir / decoy).read_bytes())
    env = {"AUTOCOMPLETE_CACHE_DIR": str(tmp_path / "cache")}
    result = cli("-m", str(folder / smollm2_gguf.name), "-t", "0", "--style", "text", "--only-new", FRANCE,
                 extra_env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith(" Paris")
    (converted,) = (tmp_path / "cache" / "gguf").iterdir()
    assert json.loads((converted / "tokenizer.json").read_text())["model"]["vocab"].__len__() > 40000
