"""The renderers: what a suggestion list looks like in a pipe."""

from __future__ import annotations

import io

from autocomplete.settings import Params
from autocomplete.text.suggestions import Found, Suggestion
from autocomplete.ui.render import TextRenderer


def listed(prefix: str, *completions: str, only_new: bool = False) -> list[str]:
    out = io.StringIO()
    found = Found(Suggestion(c, 0.5, None) for c in completions)
    TextRenderer(only_new=only_new, file=out).suggestions(prefix, found, "tiny", Params(), 3, "query")
    return [line.rsplit("  ", 1)[0].rstrip() for line in out.getvalue().splitlines()]


def test_a_list_shows_the_prefix_with_the_space_it_ends_with():
    assert listed("new ", "york city", "jersey") == ["new york city", "new jersey"]
    assert listed("new yo", "rk city") == ["new york city"]


def test_a_list_shows_a_prefix_of_several_lines_on_one():
    assert listed("  first line\nnew\t\tyo", "rk") == ["first line new york"]


def test_only_new_shows_the_completions_alone():
    assert listed("new ", "york city", only_new=True) == ["york city"]
