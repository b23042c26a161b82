"""The --api paths that need logprobs (token healing on text, --suggest, --explain), in CI: against
tests/engine/logprob_server.py, a stand-in for llama.cpp's server whose answers the tiny GPT-2 computes, compared
with the same model in process. The same checks against the real llama.cpp server are in tests/engine/test_api.py
(they run where llama-cpp-python is installed)."""

from __future__ import annotations

import json
import math
import urllib.request

import pytest

from tiny_gpt2 import PHRASES

WORDS = {word.strip("?.") for phrase in PHRASES for word in phrase.split()}
# Mid-word prompts the tiny model memorised the end of: "san fr" is read as 'san', ' f', 'r', a boundary the
# model never saw in training, so unhealed it goes astray (see test_without_logprobs_...).
MID_WORD = ["san fr", "new yo", "i love pi", "seoul sub", "python list compr", "cheap fli"]


@pytest.fixture(scope="module")
def engine(logprob_api):
    return logprob_api


def lines(result) -> list[str]:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().splitlines()


def records(result) -> list[dict]:
    return [json.loads(line) for line in lines(result)]


def each(prompts: list[str]) -> bytes:
    return "".join(p + "\n" for p in prompts).encode()


def picks(record: dict) -> list[str]:
    return [step["picked"]["text"] for step in record["steps"]]


# --- one-shot completions: token healing on text ----------------------------------------------------------------


def test_one_shot_healing_over_the_api_is_greedy_in_process(cli, engine, tiny_dir):
    served = lines(cli("--api", engine, "-t", "0", "--each-line", input=each(MID_WORD)))
    local = lines(cli("-m", str(tiny_dir), "-t", "0", "--each-line", input=each(MID_WORD)))
    assert served == local
    assert served[:3] == ["san francisco weather is good in april?", "new york pizza near me", "i love pizza 🍕🍕"]


def test_without_logprobs_the_word_is_continued_unhealed_and_said_once(cli, engine):
    prompts = ["san fr", "new yo", "i love pi"]
    healed = lines(cli("--api", engine, "-t", "0", "--each-line", input=each(prompts)))
    result = cli("--api", engine, "-m", "none", "-t", "0", "--each-line", input=each(prompts))
    unhealed = lines(result)
    assert all(u.startswith(p) and u != h for p, u, h in zip(prompts, unhealed, healed)), unhealed
    assert result.stderr.decode().count("unhealed") == 1  # three prompts, one notice
    again = cli("--api", engine, "-m", "none", "-t", "0", "san fr")
    assert lines(again) == unhealed[:1] and again.stderr == b""
    refused = cli("--api", engine, "-m", "none", "--suggest", "3", "san fr")
    assert refused.returncode == 1 and "sends no logprobs" in refused.stderr.decode().splitlines()[-1]


def test_a_healed_sampled_completion_is_reproducible_by_seed(cli, engine):
    """Hot enough (T = 2, no top-k/top-p) that the tiny model's memorised phrase comes apart, differently per seed;
    the typed letters are always spelled on ("ancisco"), which the unhealed prompt never does."""
    args = ("--api", engine, "-t", "2", "-k", "0", "-p", "1", "--stop", "none", "-n", "12", "--json", "san fr")
    runs = {seed: [records(cli(*args, "--seed", str(seed)))[0]["completion"] for _ in range(2)] for seed in range(1, 5)}
    assert all(first == second for first, second in runs.values()), runs  # the same seed, the same text
    assert len({first for first, _ in runs.values()}) > 1, runs  # and it does sample
    assert all(first.startswith("ancisco") for first, _ in runs.values()), runs


# --- --suggest ----------------------------------------------------------------------------------------------------


def test_suggestions_over_the_api_finish_the_typed_word(cli, engine, tiny_dir):
    prompts = ["san fr", "new yo", "seoul sub", "san "]
    result = cli("--api", engine, "--suggest", "3", "--json", "--each-line", input=each(prompts))
    served = records(result)
    # in process at the stand-in server's precision (transformers, fp32), so the probabilities compare
    local = records(cli("-m", str(tiny_dir), "--precision", "fp32", "--suggest", "3", "--json", "--each-line",
                        input=each(prompts)))
    assert "approximate" in result.stderr.decode()
    for prompt, ours, theirs in zip(prompts, served, local):
        assert ours["prefix"] == prompt and ours["exact"] is False and ours["suggestions"], ours
        before = len(prompt.split()) - (0 if prompt.endswith(" ") else 1)  # the words before the typed one
        for s in ours["suggestions"]:
            assert s["text"] == prompt + s["completion"] and s["tokens"] is None
            assert s["text"].split()[before] in WORDS, s  # the typed word finished as the model learnt it
        probabilities = [s["probability"] for s in ours["suggestions"]]
        # (a suggestion and its longer continuations overlap, so the list may sum past 1, in process too)
        assert probabilities == sorted(probabilities, reverse=True) and all(0 < q <= 1 + 1e-9 for q in probabilities)
        assert [s["text"] for s in ours["suggestions"]] == [s["text"] for s in theirs["suggestions"]]
    # After "san " the memorised place, with the probability the model gives it in process.
    assert served[3]["suggestions"][0]["completion"] == "francisco"
    assert served[3]["suggestions"][0]["probability"] == pytest.approx(local[3]["suggestions"][0]["probability"],
                                                                       rel=1e-3)


def test_text_style_suggestions_over_the_api_go_past_the_typed_word(cli, engine, tiny_dir):
    served = records(cli("--api", engine, "--suggest", "3", "--json", "san fr"))[0]
    local = records(cli("-m", str(tiny_dir), "--suggest", "3", "--json", "san fr"))[0]
    assert [s["completion"] for s in local["suggestions"]] == ["ancisco", "ancisco weather", "ancisco weather is"]
    assert [s["completion"] for s in served["suggestions"]] == [s["completion"] for s in local["suggestions"]]


# The query frame of these tests: a line the tiny model memorised. After lines it never saw, its odd queries hang on
# the float rounding of the CPU it was trained on, and can leave the typed letters out of a server's top
# alternatives, where healing over the API can't find them (a limit the README states). So the query-style tests
# take, of CANDIDATES, the prompts whose typed letters the server lists after the frame on this machine.
FRAME = "seoul subway map\n"
CANDIDATES = ["san fr", "san d", "seoul sub", "new yo", "i love pi", "cheap fli", "what time is it in syd",
              "how to make cold br", "san t", "san l"]


def seen_over_api(engine: str, prompt: str) -> bool:
    """Whether the stand-in server, asked for its top 20 after the frame and the prompt up to the typed word, lists
    a token that spells that word on (whatever its case, as the query style matches letters)."""
    kept, typed = prompt.rsplit(" ", 1)
    body = {"model": "legacy", "prompt": FRAME + kept, "max_tokens": 1, "temperature": 0, "logprobs": 20}
    request = urllib.request.Request(engine + "/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        listed = json.loads(reply.read())["choices"][0]["logprobs"]["top_logprobs"][0]
    typed = " " + typed.lower()
    return any(t and (typed.startswith(t.lower()) or t.lower().startswith(typed)) for t in listed)


@pytest.fixture(scope="module")
def visible(engine) -> list[str]:
    found = [prompt for prompt in CANDIDATES if seen_over_api(engine, prompt)]
    assert found, "after the frame, the server lists the typed letters of none of the candidate prompts"
    return found


def test_suggestions_over_the_api_are_given_the_typed_letters(cli, engine, tiny_dir, tmp_path, visible):
    examples = tmp_path / "examples.txt"
    examples.write_text(FRAME)
    # in process at the stand-in server's precision (transformers, fp32), so the odd queries are the same ones
    query = ("--style", "query", "--examples", str(examples), "--suggest", "3", "--json", "--each-line")
    local = records(cli("-m", str(tiny_dir), "--precision", "fp32", *query, input=each(visible)))
    served = records(cli("--api", engine, *query, input=each(visible)))
    same = 0
    for prompt, ours, theirs in zip(visible, served, local):
        assert all(s["text"].startswith(prompt) for s in ours["suggestions"])
        # Where the server's top 20 hold what the search in process follows, the best query is the same one. (Not
        # the whole list: over the API the sampler's odds are renormalised over the listed tokens alone, which can
        # reorder the rest, and which rest depends on how the tiny model came out of training on this machine.)
        same += bool(ours["suggestions"] and theirs["suggestions"]) and \
            ours["suggestions"][0]["text"] == theirs["suggestions"][0]["text"]
    assert same, (served, local)
    text = ("--suggest", "1", "--json", "san d")  # "san d" is "san diego" in process: probability 1
    assert records(cli("--api", engine, *text))[0]["suggestions"][0]["probability"] == pytest.approx(
        records(cli("-m", str(tiny_dir), *text))[0]["suggestions"][0]["probability"], rel=1e-2)


# --- --explain ----------------------------------------------------------------------------------------------------


def test_explain_over_the_api_picks_what_greedy_in_process_picks(cli, engine, tiny_dir):
    prompts = ["san fr", "new yo", "i love pi", "seoul sub"]
    served = records(cli("--api", engine, "--explain", "-t", "0", "-n", "3", "--json", "--each-line",
                         input=each(prompts)))
    # in process at fp32, as the server runs it
    local = records(cli("-m", str(tiny_dir), "--precision", "fp32", "--explain", "-t", "0", "-n", "3", "--json",
                        "--each-line", input=each(prompts)))
    for prompt, ours, theirs in zip(prompts, served, local):
        typed = " " + prompt.split()[-1]
        # the typed word finished as a whole, the same word, first; over the API its tokens are texts
        assert ours["word"]["text"] == theirs["word"]["text"] and ours["word"]["text"].startswith(typed)
        assert ours["word"]["tokens"] is None and ours["word"]["candidates"][0]["text"] == ours["word"]["text"]
        # (-n 3 counts the word's tokens past the typed letters, "rk" of " yo" + "rk", as in process; over the API
        # how the typed letters were tokenized in the prompt is not known, so it may stop sooner)
        assert ours["steps"] and picks(ours) == picks(theirs)[: len(picks(ours))], (picks(ours), theirs)
        assert theirs["completion"].startswith(ours["completion"]) and ours["completion"]
        for step, same in zip(ours["steps"], theirs["steps"]):
            assert all(c["token"] is None and "logprob" in c for c in step["candidates"])
            cold = [c["probability"]["0.0"] for c in step["candidates"]]
            assert cold.count(1.0) == 1 and step["candidates"][cold.index(1.0)]["text"] == step["picked"]["text"]
            assert step["allowed_tokens"] is None  # past the typed word: the model's own odds at T = 1
            # the server's log-probability is the model's own; the probability shown is it renormalised over the
            # top alternatives listed, so never below it (by how much depends on the model's tail past them)
            [ours_picked] = [c for c in step["candidates"] if c["text"] == step["picked"]["text"]]
            [q] = [c["probability"]["1.0"] for c in same["candidates"] if c["text"] == same["picked"]["text"]]
            assert math.exp(ours_picked["logprob"]) == pytest.approx(q, abs=1e-3)
            assert q - 1e-3 <= ours_picked["probability"]["1.0"] <= 1.0
    shown = cli("--api", engine, "--explain", "-t", "0", "-n", "2", "san fr")
    out = "\n".join(lines(shown))
    assert "probabilities approximate" in out and "the typed word, finished" in out and "picked ' francisco'" in out
    assert "step 1:" in out and out.endswith("san francisco weather is")


# --- both logprobs shapes -------------------------------------------------------------------------------------------


def test_the_server_sends_both_shapes(engine):
    """So that the next test reads both: llama-server's per-position list, and the legacy dict."""
    def ask(model: str) -> dict:
        body = {"model": model, "prompt": "san", "max_tokens": 2, "temperature": 0, "logprobs": 3}
        request = urllib.request.Request(engine + "/completions", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read())["choices"][0]["logprobs"]

    content, legacy = ask("tiny-gpt2"), ask("legacy")
    assert [entry["token"] for entry in content["content"]] == legacy["tokens"] == [" francisco", " weather"]
    assert [entry["top_logprobs"][0]["token"] for entry in content["content"]] == legacy["tokens"]
    assert list(legacy["top_logprobs"][0]) == [t["token"] for t in content["content"][0]["top_logprobs"]]
    assert "content" not in legacy and "tokens" not in content


def test_both_logprobs_shapes_give_the_same_answers(cli, engine):
    prompts = ["san fr", "new yo", "i love pi"]
    for args in [("-t", "0"), ("--suggest", "3", "--json"), ("--explain", "-t", "0", "-n", "3", "--json")]:
        content = lines(cli("--api", engine, "-m", "tiny-gpt2", *args, "--each-line", input=each(prompts)))
        legacy = lines(cli("--api", engine, "-m", "legacy", *args, "--each-line", input=each(prompts)))
        if "--json" in args:
            strip = ("model", "settings", "stats")  # which model was named; the seed drawn; the time taken
            content, legacy = ([{k: v for k, v in json.loads(line).items() if k not in strip} for line in out]
                               for out in (content, legacy))
        assert content == legacy and len(content) == 3, args
    assert content[0]["completion"].startswith("ancisco")


# --- the query style ------------------------------------------------------------------------------------------------


def test_the_query_style_over_the_api(cli, engine, tiny_dir, tmp_path, visible):
    """The frame is sent before the prompt, healing folds case, the query ends at its line. (Not compared with the
    model in process: after a frame it never saw, the tiny model's odd queries hang on the CPU's float rounding,
    and the server reads the healed word again as text, tokenized its own way; test_suggestions_... compares the
    lists, which read the same tokens.)"""
    examples = tmp_path / "examples.txt"
    examples.write_text(FRAME)
    query = {"AUTOCOMPLETE_STYLE": "query"}
    prompts = visible
    args = ("--examples", str(examples), "-t", "0", "--each-line")
    served = lines(cli("--api", engine, *args, input=each(prompts), extra_env=query))
    assert len(served) == len(prompts) and all(line.startswith(prompt) for line, prompt in zip(served, prompts))
    unhealed = lines(cli("--api", engine, "-m", "none", *args, input=each(prompts), extra_env=query))
    assert all(line.startswith(prompt) for line, prompt in zip(unhealed, prompts)) and unhealed != served
    # --suggest: whole queries (here without top-p and top-k, so the list is the model's own), the typed letters
    # matched whatever their case ("san FR" as "san fr"): one line each, healed (the typed word goes on)
    suggest = ("--style", "query", "--examples", str(examples), "-p", "1", "-k", "0", "--suggest", "3", "--json")
    prompt = prompts[0]
    kept, typed = prompt.rsplit(" ", 1)
    lists = [[s["completion"] for s in records(cli("--api", engine, *suggest, asked))[0]["suggestions"]]
             for asked in (prompt, f"{kept} {typed.upper()}")]
    assert lists[0] == lists[1] and all("\n" not in c and "\ufffd" not in c for c in lists[0])
    assert all(not c.startswith(" ") for c in lists[0])
