"""Case, as a search box meets it (autocomplete.text.casing): a lower-case query read in its casings, on the real
model, whose odds for names in their own case are what the mixture is for."""

from __future__ import annotations

import pytest

from autocomplete.settings import Params
from autocomplete.text.casing import apart, casings, weights
from autocomplete.text.complete import complete
from autocomplete.text.prompt import prepare
from autocomplete.text.suggest import suggest


def reads(lm, prefix: str):
    return [prepare(lm, text, "query", None, 8, quiet=True) for text in casings(prefix, "query")]


@pytest.mark.parametrize("typed, style, expected", [
    ("las ve", "query", ["las ve", "Las Ve"]),
    ("l'oreal par", "query", ["l'oreal par", "L'Oreal Par"]),
    ("Las ve", "query", ["Las ve"]),  # capitals typed: the user's own casing
    ("las ve", "text", ["las ve"]),
    ("2024 ", "query", ["2024 "]),
])
def test_a_lower_case_query_is_read_as_typed_and_with_each_word_capitalised(typed, style, expected):
    assert casings(typed, style) == expected


def test_one_word_is_spelled_in_each_casings_own_case_several_in_any(smol):
    one, apart_ = apart(reads(smol, "toron"))
    assert apart_ and [r.healing.tail for r in one] == [b"toron", b"Toron"] and not any(r.healing.fold for r in one)
    two, apart_ = apart(reads(smol, "las ve"))
    assert not apart_ and len(two) == 2 and all(r.healing.fold for r in two)
    digits, apart_ = apart(reads(smol, "3dp"))  # no letter first to tell the casings apart by: one read
    assert not apart_ and len(digits) == 1


def test_each_casing_is_weighed_by_the_models_odds_of_it(smol):
    shares = weights(smol, reads(smol, "las ve"))
    assert sum(shares) == pytest.approx(1.0) and shares[1] > 0.5  # "Las Ve…" is how the name is written
    assert weights(smol, reads(smol, "Las ve")) == [1.0]


def test_a_name_typed_in_lower_case_is_found_and_shown_in_lower_case(smol):
    found = suggest(smol, "las ve", Params(style="query"), n=5)
    assert found[0].completion == "gas"  # "las vegas"
    assert all(s.completion == s.completion.lower() for s in found)
    assert len({s.completion for s in found}) == len(found)  # a suggestion in two casings: one row, summed
    greedy = complete(smol, "las ve", Params(temperature=0, style="query"), lambda piece: None)
    assert greedy.completion.startswith("gas")
