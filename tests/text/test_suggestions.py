"""What a suggestion list may hold (autocomplete.text.suggestions): no word said twice, variants added up."""

from __future__ import annotations

import pytest

from autocomplete.text.suggestions import Tally, normalise, repeats


@pytest.mark.parametrize("typed, completion, said_twice", [
    ("san fra", "ncisco airport airport", True),  # back to back
    ("stock mar", "ket stock market", True),  # a run of words back to back
    ("seat", " in seat", True),  # apart, the completion writing it again
    ("jacks", "on jackson", True),
    ("new york", " new york pizza", True),
    ("how to tie a ", "tie", False),  # a short word may come back
    ("how to make a cake for a ", "party", False),
    ("new york new ", "york times", True),  # "new york" twice back to back: the completion wrote the second
    ("stock market stock", "", False),  # the user typed it twice: theirs
    ("the the ", "end", False),
    ("san fra", "ncisco airport", False),
])
def test_a_word_said_twice_where_the_completion_wrote_it(typed, completion, said_twice):
    assert repeats(typed, completion) is said_twice


def test_the_word_still_growing_is_not_counted_yet():
    assert not repeats("stock market stock", " mar", growing=True)
    assert not repeats("stock market stock", " mar")  # "mar" isn't "market"
    assert repeats("seat in", " seat", growing=False) and not repeats("seat in", " sea", growing=True)


def test_variants_of_one_suggestion_add_up_and_the_likeliest_shows():
    tally = Tally()
    tally.add("Las Vegas", 0.2, [1])
    tally.add("las vegas.", 0.3, [2])
    tally.add("las velez", 0.4, [3])
    best = tally.best(2)
    assert [s.completion for s in best] == ["las vegas.", "las velez"]
    assert best[0].probability == pytest.approx(0.5) and normalise("Las  Vegas.") == "las vegas"
