"""--explain on the command line: its JSON steps and its tables (the numbers: tests/text/test_explain.py)."""

from __future__ import annotations

import json

import pytest
import torch

from autocomplete.text.prompt import prepare


def test_cli_json_steps(cli, tiny_dir, tiny):
    result = cli("-m", str(tiny_dir), "--engine", tiny.engine.name, "--explain", "-t", "0.3", "-t", "2", "--json",
                 "--stop", "none", "san")  # the engine (at its default precision) `tiny` is loaded on
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["temperatures"] == [1.0, 0.3, 2.0] and record["style"] == "text"
    # "san" is the word being typed: it is finished as a whole first (autocomplete.text.word), the candidate words
    # shown with their probabilities; the steps come after it, each free, at the model's own odds
    word = record["word"]
    assert word["text"].startswith("san") and word["candidates"][0]["text"] == word["text"]
    chances = [c["probability"] for c in word["candidates"]]
    assert chances == sorted(chances, reverse=True) and 0 < sum(chances) <= 1 + 1e-6
    assert record["tokens"] == word["tokens"] + [step["picked"]["token"] for step in record["steps"]]
    assert tiny.decode(word["tokens"]) == word["text"]
    read = prepare(tiny, "san", "text", None, 24, quiet=True)
    first, second = record["steps"][:2]
    assert first["allowed_tokens"] is None and second["allowed_tokens"] is None
    for step, before in ((first, word["tokens"]), (second, word["tokens"] + [first["picked"]["token"]])):
        expected = tiny.engine.read(read.ids + before)[0]
        for c in step["candidates"]:
            for t in ("1.0", "0.3", "2.0"):
                assert c["probability"][t] == pytest.approx(
                    float(torch.softmax(torch.from_numpy(expected) / float(t), -1)[c["token"]]), rel=1e-4, abs=1e-12)
    assert second["entropy_bits"]["0.3"] < second["entropy_bits"]["1.0"] < second["entropy_bits"]["2.0"]


def test_cli_table_says_the_style_and_the_word_chosen(cli, tiny_dir):
    result = cli("-m", str(tiny_dir), "--explain", "-t", "0", "-n", "2", "--style", "text", "san fr")
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr
    assert "style text" in out and "the typed ' fr' is finished as a whole word" in out
    chosen = out[out.index("the typed word, finished"):out.index("step 1")]
    assert "' francisco'" in chosen and "picked ' francisco'" in chosen
    assert "picked ' weather'" in out[out.index("step 1"):]


def test_cli_table(cli, tiny_dir):
    result = cli("-m", str(tiny_dir), "--explain", "-t", "0", "-n", "2", "san")
    out = result.stdout.decode()
    assert result.returncode == 0 and "step 1" in out and "step 2" in out and "T=1" in out and "T=0" in out
    assert "picked ' francisco'" in out and "entropy" in out


def test_several_temperatures_need_explain(cli, tiny_dir):
    result = cli("-m", str(tiny_dir), "-t", "0.3", "-t", "2", "san")
    assert result.returncode == 2 and b"--explain" in result.stderr
