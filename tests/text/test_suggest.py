"""Suggestions: the best-first search against brute force, and its probabilities against the model's own."""

from __future__ import annotations

import json

import pytest
import torch

from autocomplete.text.caches import kept
from autocomplete.text.prompt import prepare
from autocomplete.settings import Params
from autocomplete.text.masks import word_starts
from autocomplete.text.suggest import suggest
from autocomplete.text.suggestions import normalise


def sampler_probs(logits: torch.Tensor, s: Params) -> torch.Tensor:
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


def allowed_after(lm, tail: bytes, tokens) -> list[int] | None:
    """Whole-word healing's constraint written out independently: every token that spells on what is left of the
    typed word (begins with it, or is a piece of it), so every tokenization of it is searched. None once spelled."""
    pieces = kept(lm).vocab.pieces
    spelled = b"".join(pieces[t] for t in tokens)
    if len(spelled) >= len(tail):
        return None
    rest = tail[len(spelled):]
    return [i for i, p in enumerate(pieces) if p and (p.startswith(rest) or rest.startswith(p))]


def says_twice(text: str) -> bool:
    """A word or a run of words said twice back to back, or a word of 4+ letters twice anywhere (the prefixes here
    type no such thing themselves)."""
    words = [w.strip(".,;:!?…") for w in text.lower().split()]
    return any(words[i:i + k] == words[i + k:i + 2 * k] for k in range(1, len(words) // 2 + 1)
               for i in range(len(words) - 2 * k + 1)) \
        or any(len(w) > 3 and w in words[:i] for i, w in enumerate(words))


def written_so(lm, tokens) -> bool:
    """Whether the tokenizer itself writes the tokens' text with exactly these tokens (the only tokenization credited)."""
    try:
        text = b"".join(kept(lm).vocab.pieces[t] for t in tokens).decode()
    except UnicodeDecodeError:
        return False
    return lm.tokenizer(text, add_special_tokens=False)["input_ids"] == list(tokens)


def finished_words_written_so(lm, tokens) -> bool:
    """Whether the words before the last (which may still grow) are written so: the tokenizer splits text into words
    before tokenizing, so once one isn't, nothing that follows is ever the tokenizer's own."""
    starts = [i for i, t in enumerate(tokens)  # a token that begins with a space or an ASCII punctuation mark
              if i and (first := kept(lm).vocab.pieces[t][:1]).isascii() and first and not first.isalnum()]
    return not starts or written_so(lm, tokens[:starts[-1]])


def next_probs(lm, read, tokens, s):
    """The search's odds after `tokens`: while they spell the typed word, the model's own (T = 1, no top-k or top-p)
    over the tokens that fit; after, the sampler's."""
    logits = torch.from_numpy(lm.engine.read(read.ids + list(tokens), read.after())[0])
    allowed = allowed_after(lm, read.healing.tail if read.healing else b"", tokens)
    if allowed is not None:
        logits = torch.where(torch.isin(torch.arange(len(logits)), torch.tensor(allowed)), logits, -torch.inf)
        return sampler_probs(logits, Params(temperature=1.0, top_k=0, top_p=1.0))
    return sampler_probs(logits, s)


def probability(lm, prefix, tokens, s) -> float:
    """P(the sampler writes `tokens`, then a token that starts a new word or ends the text)."""
    read = prepare(lm, prefix, s.style, None, 24, quiet=True)
    p = 1.0
    for i, token in enumerate(tokens):
        p *= float(next_probs(lm, read, tokens[:i], s)[token])
    ends = torch.from_numpy(word_starts(lm, len(lm.engine.read(read.ids)[0])))
    return p * float(next_probs(lm, read, tokens, s)[ends].sum())


def brute_force(lm, prefix, s, n, words):
    """Every token sequence, scored, filtered and merged like suggestions (the tokenizations of one suggestion
    summed, the likeliest shown; none that says a word twice, none but the tokenizer's own tokenization of its text
    credited): a plain depth-first walk of the token tree, within the search's room. A branch is cut when its
    probability so far is below the n-th best score found, or below a floor: every sequence under it scores at most
    that on its own (the search's rule too: such a tokenization is not added in). The floor starts at 0.1 and is cut
    tenfold until the n-th best is above it (so a deep walk through a word never credited ends)."""
    read = prepare(lm, prefix, s.style, None, words * 8, quiet=True)  # the search's room: 8 tokens a word
    tail = read.healing.tail if read.healing else b""
    ends = torch.from_numpy(word_starts(lm, len(lm.engine.read(read.ids)[0])))
    found = {}
    rows = {}
    floor = 0.1

    def nth_best() -> float:
        scores = sorted((v[0] for v in found.values()), reverse=True)
        return scores[n - 1] if len(scores) >= n else 0.0

    def text_of(tokens):
        return b"".join(kept(lm).vocab.pieces[t] for t in tokens)[len(tail):].decode(errors="replace")

    def walk(tokens, p):
        if tokens not in rows:
            rows[tokens] = next_probs(lm, read, tokens, s)
        probs = rows[tokens]
        text = text_of(tokens)
        spelled = allowed_after(lm, tail, tokens) is None
        # (in the text style, punctuation after a word is in that word's boundary mass already: not counted again)
        again = s.style != "query" and tokens and normalise(text) == normalise(text_of(tokens[:-1]))
        if spelled and any(c.isalnum() for c in text) and "\ufffd" not in text and not says_twice(prefix + text) \
                and not again and written_so(lm, tokens):
            score = p * float(probs[ends].sum())
            key = normalise(text)
            total, best, tokens_shown = found.get(key, (0.0, 0.0, None))
            found[key] = (total + score, *((score, list(tokens)) if score > best else (best, tokens_shown)))
        if "\ufffd" in text.rstrip("\ufffd") or not finished_words_written_so(lm, tokens):
            return  # bytes that are no character, before the end, or a word not written so: nothing after counts
        for token in torch.nonzero(probs).flatten().tolist():
            child = tokens + (token,)
            child_text = text_of(child)
            if token in lm.eos_ids or "\n" in child_text or len(child_text.split()) > words or len(child) > read.max_new:
                continue
            if p * float(probs[token]) >= max(nth_best(), floor):
                walk(child, p * float(probs[token]))

    while True:
        found.clear()
        walk((), 1.0)
        if nth_best() >= floor:
            break
        floor /= 10
    return [(total, tokens) for total, _, tokens in sorted(found.values(), key=lambda v: -v[0])[:n]]


# The tiny tokenizer cuts words into several tokens, so brute force must go deep; a small top-k keeps it small.
# "san fr" ends mid-word: its suggestions must spell " fr" first (token healing).
@pytest.mark.parametrize("prefix, top_k, temperature", [("san", 2, 1.0), ("seoul", 3, 1.0), ("new", 3, 0.7),
                                                        ("san fr", 3, 1.0)])
def test_search_finds_exactly_what_brute_force_finds(tiny, prefix, top_k, temperature):
    s = Params(temperature=temperature, top_k=top_k, top_p=1.0, style="text")
    expected = brute_force(tiny, prefix, s, n=5, words=2)
    assert len(expected) == 5
    got = suggest(tiny, prefix, s, n=5, words=2)
    assert [g.tokens for g in got] == [tokens for _, tokens in expected]
    # Rounding, and what a tokenization far below the 5th's score adds: the depth-first walk may reach one before
    # its list is full and count it, the best-first search, whose bar is higher by then, never reads it (on one
    # machine's tiny model "seoul in" had one of 3e-6 against a 5th of 8e-3).
    bar = expected[-1][0]
    assert [g.probability for g in got] == pytest.approx([p for p, _ in expected], rel=1e-4, abs=1e-3 * bar)


def test_probabilities_are_the_models_under_default_settings(tiny):
    s = Params(style="text")  # temperature 0.7, top-k 50, top-p 0.8
    got = suggest(tiny, "san", s, n=4, words=3)
    assert got and all(0 < g.probability <= 1 for g in got)
    assert [g.probability for g in got] == sorted((g.probability for g in got), reverse=True)
    for g in got:
        assert g.probability == pytest.approx(probability(tiny, "san", g.tokens, s), rel=1e-4)
        assert "san" + g.completion == tiny.decode(g.tokens)  # the tokens spell the typed word again
    assert got[0].completion == " francisco"


def test_case_space_and_trailing_punctuation_variants_are_merged():
    assert normalise(" San  Francisco") == normalise("san francisco")
    assert normalise(" Paris.") == normalise(" Paris,") == normalise(" Paris") != normalise(" Paris. The")


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


def test_the_search_stays_within_the_context_window(tiny, monkeypatch):
    """A prompt that leaves room for only 2 new tokens: no suggestion is explored past them, however short in
    words (the tiny vocabulary spells " francisco" in several tokens)."""
    import autocomplete.text.suggest as search

    real = search.prepare

    def nearly_full(*args, **kwargs):
        read = real(*args, **kwargs)
        read.max_new = 2
        return read

    monkeypatch.setattr(search, "prepare", nearly_full)
    found = suggest(tiny, "san ", Params(temperature=1.0, style="text"), n=5, words=3)
    assert found and all(len(s.tokens) <= 2 for s in found)


@pytest.mark.parametrize("bound", ["SUGGEST_EXPANSIONS", "reads"])
def test_a_search_cut_short_says_so(cli, tiny_dir, monkeypatch, tiny, capsys, bound):
    import io

    import autocomplete.text.suggest as search
    from autocomplete.ui.render import JsonRenderer, TextRenderer

    settings = Params(temperature=3.0, top_k=0, top_p=1.0, style="text")
    assert suggest(tiny, "san", settings, n=5, words=3).exact  # the tiny model's odds are peaked: it finishes
    assert json.loads(cli("-m", str(tiny_dir), "--suggest", "5", "--json", "san").stdout)["exact"] is True
    tiny.prefixes = None  # nothing read before: the bound is met from scratch
    if bound == "SUGGEST_EXPANSIONS":
        monkeypatch.setattr(search, "SUGGEST_EXPANSIONS", 4)
    cut = suggest(tiny, "san", settings, n=5, words=3, reads=4 if bound == "reads" else None)
    assert not cut.exact
    out = io.StringIO()
    JsonRenderer(out).suggestions("san", cut, "tiny", settings, 3, "text")
    assert json.loads(out.getvalue())["exact"] is False
    TextRenderer(file=io.StringIO()).suggestions("san", cut, "tiny", settings, 3, "text")
    err = capsys.readouterr().err
    assert "stopped at its bound" in err and len(err.strip().splitlines()) == 1
    assert ("4 rows read" in err) == (bound == "reads")


def test_rows_read_before_are_free_and_an_empty_list_reads_on(tiny):
    """`reads` counts the rows a list reads, not those an earlier one read: typing on, a list goes deeper than the
    bound alone would let it; and a list with no suggestion yet reads past the bound (never empty for speed)."""
    settings = Params(temperature=1.0, top_k=0, top_p=1.0, style="text")
    tiny.prefixes = None
    assert suggest(tiny, "new york", settings, n=5, words=3).exact
    tiny.prefixes = None
    none = suggest(tiny, "new york", settings, n=5, words=3, reads=0)
    assert len(none) >= 1 and not none.exact  # read on past 0 rows until it had one, then stopped
    tiny.prefixes = None
    cut = suggest(tiny, "new york", settings, n=5, words=3, reads=2)
    assert not cut.exact and len(cut) >= len(none)
    tiny.prefixes = None
    for end in range(len("new"), len("new york") + 1):  # typed letter by letter: each list reads 2 rows more
        typed = suggest(tiny, "new york"[:end], settings, n=5, words=3, reads=2)
    assert len(typed) >= len(cut)
    assert sum(a.probability for a in typed) > sum(c.probability for c in cut)  # deeper: found likelier ones


def test_bytes_that_are_no_character_are_never_suggested(tiny):
    """After a frame it never saw, the tiny model wanders into tokens that are pieces of characters that never
    complete (on some CPUs' training rounding): such text is followed while it may still become a character, never
    suggested. Every token of every list is checked, whatever this machine's model writes."""
    s = Params(temperature=1.0, top_k=0, top_p=1.0, style="query", examples=["weather tomorrow in london"])
    for prefix in ("san fr", "new yo", "seoul sub", "how to make cold br"):
        found = suggest(tiny, prefix, s, n=5, words=3)
        assert found and all("\ufffd" not in g.completion for g in found)
        assert all(kept(tiny).vocab.text(g.tokens).encode("utf-8", errors="strict") for g in found)


def test_no_row_is_read_that_can_never_be_written_so(smol, monkeypatch):
    """A row whose tokens are not the tokenizer's own for their text (" Conn" + "e" for " Conne") never becomes so
    with more tokens (byte-level BPE: tests/text/test_heal.py), so no suggestion under it is credited: the search
    doesn't read it. Typed with a capital, the query is read in its one casing: the rows are the tokens after it."""
    from autocomplete.text import search

    read_rows = []
    explore = search.explore

    def recorded(frontier, read, *args, **kwargs):
        return explore(frontier, lambda nodes: read_rows.extend(nodes) or read(nodes), *args, **kwargs)

    monkeypatch.setattr(search, "explore", recorded)
    smol.prefixes = None
    found = suggest(smol, "Connec", Params(style="query"), n=5)
    assert found and len(read_rows) > 8
    for tokens in read_rows:
        try:
            text = b"".join(kept(smol).vocab.pieces[t] for t in tokens).decode()
        except UnicodeDecodeError:
            continue  # inside a character: its next token may finish it
        assert written_so(smol, tokens) or text[-1:].isspace(), text
