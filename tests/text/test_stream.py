"""Streaming: pieces at word boundaries, never half a character, and joined they are exactly the final text."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from autocomplete.text.stream import TextStream, stop_index


def stream_all(decode, ids, stop="none"):
    stream = TextStream(decode, stop)
    pieces = []
    for token in ids:
        pieces.append(stream.put(token))
        if stream.stopped:
            break
    pieces.append(stream.flush())
    return stream, [p for p in pieces if p]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffd"), min_size=1, max_size=60),
       stop=st.sampled_from(["none", "line", "sentence"]))
def test_joined_pieces_equal_decoded_text(tiny, text, stop):
    """(Without U+FFFD: at the very end it reads as a character cut short, and is dropped, see below.)"""
    ids = tiny.encode(text)
    stream, pieces = stream_all(tiny.decode, ids, stop)
    assert "".join(pieces) == stream.text
    full = tiny.decode(ids)
    if stop == "none":
        assert stream.text == full == text  # byte-level BPE round-trips any Unicode
    else:
        assert full.startswith(stream.text)
        cut = stop_index(full, stop)
        assert stream.text == (full if cut is None else full[:cut])


@pytest.mark.parametrize("text", ["서울 날씨는 오늘 맑아요", "i love pizza 🍕🍕 and 🍣 sushi", "naïve café 東京 🇰🇷 ok"])
def test_multibyte_characters_are_never_split(tiny, text):
    ids = tiny.encode(text)
    # the tiny vocabulary splits Korean characters across tokens, so decoding token by token shows U+FFFD
    assert any("\ufffd" in tiny.decode(ids[:i]) for i in range(1, len(ids)))
    stream, pieces = stream_all(tiny.decode, ids)
    assert "".join(pieces) == text
    assert not any("\ufffd" in piece for piece in pieces)


def test_a_character_cut_short_by_the_end_is_not_shown():
    """The tokens ran out in the middle of an emoji (-n reached): its first bytes are dropped, not shown as U+FFFD,
    and what was streamed still equals the final text."""
    decode = lambda ids: bytes(ids).decode("utf-8", errors="replace")  # noqa: E731 - one byte per token
    data = "i love 🍕🍕".encode()[:-2]
    stream, pieces = stream_all(decode, list(data))
    assert stream.text == "i love 🍕" and "".join(pieces) == stream.text


def test_released_word_by_word(tiny):
    ids = tiny.encode("san francisco weather is good in april?")
    _, pieces = stream_all(tiny.decode, ids)
    assert pieces == ["san", " francisco", " weather", " is", " good", " in", " april?"]


def test_long_text_without_spaces_is_not_held_back_forever():
    decode = lambda ids: bytes(ids).decode("utf-8", errors="replace")  # noqa: E731 - one byte per token
    text = "🍕" * 40 + " ok"
    stream = TextStream(decode)
    released_before_space = "".join(stream.put(b) for b in "🍕".encode() * 40)
    assert len(released_before_space) >= 20 and "\ufffd" not in released_before_space
    for b in " ok".encode():
        stream.put(b)
    stream.flush()
    assert stream.text == text


@pytest.mark.parametrize(
    "text, rule, expected",
    [
        ("weather is good in april? yes", "sentence", "weather is good in april?"),
        ("costs 3.5 dollars. more", "sentence", "costs 3.5 dollars."),
        ("one line\nnext", "sentence", "one line"),
        ("서울 날씨。 more", "sentence", "서울 날씨。"),
        ("no end yet.", "sentence", None),  # the next token decides: "." may be "...", "3.5", ".com"
        ("first line. still\nsecond", "line", "first line. still"),
        ("\n\nleading breaks\nthen", "line", "\n\nleading breaks"),  # a completion must begin before it ends
        ("anything. at all\n", "none", None),
    ],
)
def test_stop_rules(text, rule, expected):
    cut = stop_index(text, rule)
    assert (None if cut is None else text[:cut]) == expected


@pytest.mark.parametrize("text", ["a\r\nb", "a\rb", "a\nb"])
def test_a_line_ends_before_any_line_break(text):
    assert stop_index(text, "line") == 1
    assert stop_index(text, "sentence") == 1
    assert stop_index(text, "none", query=True) == 1
