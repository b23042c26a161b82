"""What a suggestion list is, whoever searched for it (autocomplete.text.suggest in process, autocomplete.text.remote
over --api): torch-free, so the warm server's and the API's clients can build one."""

from __future__ import annotations

from dataclasses import dataclass


class Found(list):
    """The suggestions, best first; exact is False when the search stopped at its bounds (MAX_CHILDREN tokens per
    step, MAX_EXPANSIONS prefixes) while something it left out could still have made the list."""

    exact = True
    # Said under the list when it isn't exact ("" when said elsewhere, once).
    note = ("The search stopped at its bound (64 tokens a step, 400 prefixes): a suggestion it left out could be "
            "likelier than the last ones shown.")


@dataclass
class Suggestion:
    completion: str  # the text after the prefix
    probability: float
    tokens: list[int] | None  # None over --api: token ids don't travel


def normalise(text: str) -> str:
    """Suggestions that differ only in case, spacing or trailing punctuation are one suggestion: "Paris" already
    counts the times "Paris." follows (a full stop begins a new word), so "Paris." would only repeat it."""
    return " ".join(text.lower().split()).rstrip(_PUNCTUATION)


_PUNCTUATION = ".,;:!?…"
