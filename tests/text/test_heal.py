"""Token healing: token bytes, taking the word being typed back out of the prompt, and spelling it again."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from autocomplete.text.complete import complete
from autocomplete.text.caches import kept
from autocomplete.text.heal import Healing, back_up
from autocomplete.text.prompt import prepare, vocabulary
from autocomplete.text.sample import generate
from autocomplete.settings import Params

TEXTS = ["stock mar", "san ", "The capital of Fra", "서울 날", "i love pizza 🍕", "hello\nwor", "café crè", "x"]


@pytest.mark.parametrize("model", ["tiny", "smol"])
def test_token_bytes_decode_like_the_tokenizer(model, request):
    lm = request.getfixturevalue(f"{model}_torch")  # the vocabulary is the tokenizer's, whatever the engine
    vocab = vocabulary(lm)
    for text in TEXTS + ["naïve 東京 🇰🇷 ok", "  two  spaces\t"]:
        ids = lm.encode(text, special=False)
        assert vocab.text(ids) == lm.decode(ids) == text
        assert vocab.bytes_of(ids) == text.encode()
    assert all(vocab.pieces[i] == b"" for i in lm.eos_ids)  # special tokens spell nothing


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1, max_size=40))
def test_back_up_takes_the_last_word_and_never_splits_a_character(tiny, text):
    ids = tiny.encode(text)
    kept, tail = back_up(ids, vocabulary(tiny))
    assert ids[: len(kept)] == kept and vocabulary(tiny).bytes_of(ids[len(kept):]) == tail
    assert tail and text.encode().endswith(tail)
    assert tail.decode("utf-8")  # whole characters only (raises if not)
    word = tail.decode()
    assert word.strip() == "" or not any(c.isspace() for c in word.lstrip())  # one word, or trailing whitespace


@pytest.mark.parametrize("text, tail", [("stock mar", " mar"), ("san ", " "), ("The capital of Fra", " Fra"),
                                        ("서울 날", " 날"), ("hello\nwor", "wor"), ("x", "x")])
def test_back_up_on_the_real_vocabulary(smol, text, tail):
    ids = smol.encode(text)
    kept, typed = back_up(ids, vocabulary(smol))
    assert typed.decode() == tail and smol.decode(kept) + tail == text


def test_a_word_spanning_several_tokens_is_taken_back_whole(smol):
    text = "the anticonstitutionnellem"
    ids = smol.encode(text)
    kept, tail = back_up(ids, vocabulary(smol))
    assert tail == b" anticonstitutionnellem" and len(ids) - len(kept) >= 2


def spelled_by(lm, prompt: str, style: str, seed: int) -> tuple[bytes, bytes]:
    """(what the first generated tokens spell, the typed word): sampled at T = 1.5 so unlikely tokens come too."""
    read = prepare(lm, prompt, style, None, 8, quiet=True)
    tokens = list(generate(lm.engine, read.ids, read.max_new, temperature=1.5, rng=np.random.default_rng(seed),
                           after=read.after(), allowed=read.allowed))
    return vocabulary(lm).bytes_of(tokens), read.healing.tail


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=st.sampled_from(TEXTS + ["seoul", "서울", "new yo", "i love 🍕"]), seed=st.integers(0, 10**6))
def test_the_first_tokens_spell_the_typed_word(tiny, prompt, seed):
    out, tail = spelled_by(tiny, prompt, "text", seed)
    assert out.startswith(tail) or (tail.startswith(out) and len(out) < len(tail))  # stopped at eos while spelling


@pytest.mark.parametrize("prompt", ["stock mar", "서울 날", "the anticonstitutionnellem", "golden gate br"])
def test_real_model_spells_the_typed_word_first(smol, prompt):
    for seed in range(3):
        out, tail = spelled_by(smol, prompt, "text", seed)
        assert out.startswith(tail)


def test_query_style_matches_letters_whatever_their_case(smol):
    read = prepare(smol, "las veg", "query", None, 8, quiet=True)
    pieces = vocabulary(smol).pieces
    allowed = {pieces[i] for i in read.allowed([]).tolist()}
    assert b" Vegas" in allowed and all(p.lower().startswith(b" veg") for p in allowed)
    strict = Healing(vocabulary(smol), b" veg")  # the text style: exactly as typed
    assert {pieces[i] for i in strict.allowed([]).tolist()} == {p for p in allowed if p.startswith(b" veg")}


def test_healing_completes_mid_word_on_the_real_model(smol):
    greedy = Params(temperature=0, max_tokens=6, style="text")
    assert complete(smol, "The capital of Fra", greedy, lambda piece: None).completion.startswith("nce")
    pieces = []
    done = complete(smol, "stock mar", Params(temperature=0, max_tokens=6, style="query"), pieces.append)
    assert done.completion.startswith("ket") and "".join(pieces) == done.completion
    assert smol.decode(done.tokens).lower().startswith(" market")  # the tokens spell the typed letters again


@pytest.mark.parametrize("model", ["tiny", "smol"])
def test_the_vocabulary_kept_on_disk_is_the_one_built(model, request, tmp_path, monkeypatch):
    """A cold call reads the token bytes and their sorted orders from disk (owner-only) rather than building them
    from the tokenizer again; what it reads answers every lookup as the built one does."""
    from autocomplete.text import heal

    lm = request.getfixturevalue(f"{model}_torch")  # the vocabulary is the tokenizer's, whatever the engine
    monkeypatch.setenv("AUTOCOMPLETE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(kept(lm), "vocab", None)
    built = vocabulary(lm)
    (stored,) = (tmp_path / "vocab").iterdir()
    assert stored.stat().st_mode & 0o077 == 0
    monkeypatch.setattr(kept(lm), "vocab", None)
    monkeypatch.setattr(heal.Vocab, "__init__", lambda self, tokenizer: pytest.fail("built again"))
    read = vocabulary(lm)
    assert read is not built and read.pieces == built.pieces
    for prefix in [b" mar", b"San", b"\xec", b"a", b" "]:
        for fold in (False, True):
            assert read.starting_with(prefix, fold=fold) == built.starting_with(prefix, fold=fold)
            assert read.pieces_of(prefix + b"x", fold=fold) == built.pieces_of(prefix + b"x", fold=fold)


def test_a_torn_stored_vocabulary_is_built_again(tiny, tmp_path, monkeypatch):
    from autocomplete.text import heal

    monkeypatch.setenv("AUTOCOMPLETE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(kept(tiny), "vocab", None)
    built = vocabulary(tiny)
    (stored,) = (tmp_path / "vocab").iterdir()
    data = stored.read_bytes()
    for torn in (data[:-1], data[:100], b"", data + b"x"):
        with pytest.raises(ValueError):
            heal.Vocab.from_bytes(torn)
        stored.write_bytes(torn)
        monkeypatch.setattr(kept(tiny), "vocab", None)
        assert vocabulary(tiny).pieces == built.pieces


_BYTES = b" Aa\xfe\xff"  # few, so that runs share starts; a case pair; the bytes that have no successor
_PIECES = st.binary(min_size=1, max_size=4).map(lambda b: bytes(_BYTES[c % len(_BYTES)] for c in b))


@given(st.lists(_PIECES, min_size=1, max_size=60), _PIECES.map(lambda b: b[:3]), st.booleans(), st.booleans())
def test_tokens_starting_with_equal_a_scan(pieces, prefix, exact, fold):
    """The sorted index's run (bisect at both ends, the end found by the prefix's last byte grown) against a scan
    of every piece."""
    from autocomplete.text.heal import Vocab

    vocab = Vocab.__new__(Vocab)
    vocab.pieces, vocab._index = pieces, {}
    keys = [p.lower() if fold else p for p in pieces]
    wanted = prefix.lower() if fold else prefix
    scan = [i for i, k in enumerate(keys) if (k == wanted if exact else k.startswith(wanted))]
    assert sorted(vocab.starting_with(prefix, exact=exact, fold=fold)) == scan


def test_only_the_tokenizers_own_tokens_of_a_text_are_canonical(smol):
    """A word is credited through the tokens the tokenizer writes it with, not through a spelled-out path to the
    same letters; .words() judges the finished words only (the last may still grow)."""
    from autocomplete.text.masks import canonical

    written = canonical(smol)
    own = smol.encode(" kuala lumpur", special=False)
    spelled = [t for ch in " kuala" for t in smol.encode(ch, special=False)]  # " " "k" "u" "a" "l" "a"
    lumpur = smol.encode(" lumpur", special=False)
    assert written(own) and smol.decode(spelled) == " kuala" and not written(spelled)
    assert written.words(smol.encode(" kuala", special=False) + spelled[:3])  # " kuala" then a word begun
    assert not written.words(spelled + lumpur) and not written(spelled + lumpur)


def test_a_byte_level_bpe_tokenization_is_canonical_only_if_every_beginning_is(smol):
    """What lets the suggestion search drop a row at once (Canonical.may_grow): on the starter's byte-level BPE, each
    beginning of a canonical tokenization is its own text's canonical tokenization, but for a text that ends in white
    space (the last space goes with the next word) or inside a character. Checked on English, its lower and upper
    case, and letter soup; may_grow says so of a spelled-out path, of one cut inside a character and of one ending
    in a space."""
    import random
    from pathlib import Path

    from autocomplete.text.masks import canonical

    written = canonical(smol)
    assert written.prefix_closed
    lines = [line for line in (Path(__file__).parents[2] / "bench" / "faithfulness.txt").read_text().splitlines()
             if line.strip()]
    rng = random.Random(0)
    soup = [" " + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randrange(3, 14)))
            for _ in range(300)]
    checked = 0
    for text in lines + [" " + line.lower() for line in lines] + [line.upper() for line in lines] + soup:
        ids = smol.encode(text, special=False)
        for k in range(1, len(ids)):
            try:
                beginning = b"".join(vocabulary(smol).pieces[i] for i in ids[:k]).decode()
            except UnicodeDecodeError:
                continue
            if not beginning[-1].isspace():
                checked += 1
                assert smol.encode(beginning, special=False) == ids[:k], beginning
    assert checked > 5000
    spelled = [t for ch in " kuala" for t in smol.encode(ch, special=False)]
    assert not written.may_grow(spelled) and written.may_grow(smol.encode(" kuala", special=False))
    pieces = vocabulary(smol).pieces
    first_byte = pieces.index("é".encode()[:1])  # a byte-level BPE has a token for every byte
    inside = smol.encode(" caf", special=False) + [first_byte]
    assert written.may_grow(inside) and not written(inside)
    space = pieces.index(b" ")
    spaces = smol.encode(" kuala", special=False) + [space, space]  # "  " is one token: these two aren't canonical
    assert written.may_grow(spaces) and not written(spaces)
