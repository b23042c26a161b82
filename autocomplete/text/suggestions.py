"""What a suggestion list is, whoever searched for it (autocomplete.text.suggest in process, autocomplete.text.remote
over --api): torch-free, so the warm server's and the API's clients can build one."""

from __future__ import annotations

from dataclasses import dataclass


class Found(list):
    """The suggestions, best first; exact is False when the search stopped at one of its bounds (the search says
    which in `note`) while something it left out could still have made the list. Its wire format (what the warm
    server sends) and its --json entries are written here only."""

    # Said under the list when it isn't exact ("" when said elsewhere, once).
    note = "The search stopped at its bound: a suggestion it left out could be likelier than the last ones shown."

    def __init__(self, suggestions=(), exact: bool = True):
        super().__init__(suggestions)
        self.exact = exact

    def wire(self) -> dict:
        return {"suggestions": [s.wire() for s in self], "exact": self.exact}

    @classmethod
    def from_wire(cls, reply: dict) -> Found:
        return cls((Suggestion(**s) for s in reply["suggestions"]), reply["exact"])

    def listed(self, prefix: str) -> list[dict]:
        """Each as `--suggest N --json` lists it (and the Python API's Suggestion): its whole text first."""
        return [{"text": prefix + s.completion, **s.wire()} for s in self]


@dataclass
class Suggestion:
    completion: str  # the text after the prefix
    probability: float
    tokens: list[int] | None  # None over --api: token ids don't travel

    def wire(self) -> dict:
        return {"completion": self.completion, "probability": self.probability, "tokens": self.tokens}


class Tally:
    """The suggestions found so far, by their normalised text: another tokenization of one (or its case or spacing
    variant) adds to its probability, and the likeliest of them is the one shown."""

    def __init__(self):
        self.found: dict[str, Suggestion] = {}
        self._shown: dict[str, float] = {}  # the probability of the tokenization shown

    def add(self, text: str, score: float, tokens: list[int] | None = None) -> None:
        key = normalise(text)
        if key not in self.found:
            self.found[key], self._shown[key] = Suggestion(text, score, tokens), score
            return
        known = self.found[key]
        if score > self._shown[key]:
            known.completion, known.tokens, self._shown[key] = text, tokens, score
        known.probability += score

    def bar(self, n: int) -> float:
        """What a new suggestion must beat to make the list: the n-th best so far."""
        if len(self.found) < n:
            return 0.0
        return sorted((s.probability for s in self.found.values()), reverse=True)[n - 1]

    def best(self, n: int) -> Found:
        return Found(sorted(self.found.values(), key=lambda s: -s.probability)[:n])


def normalise(text: str) -> str:
    """Suggestions that differ only in case, spacing or trailing punctuation are one suggestion: "Paris" already
    counts the times "Paris." follows (a full stop begins a new word), so "Paris." would only repeat it."""
    return " ".join(text.lower().split()).rstrip(_PUNCTUATION)


def repeats(typed: str, completion: str, growing: bool = False) -> bool:
    """Whether typed + completion says a word twice where the completion wrote one of them: a word, or a run of
    words, back to back ("san francisco airport airport", "stock market stock market"), or a word of SHORT + 1
    letters or more anywhere ("seat in seat"; "how to tie a tie" is fine, short words repeat in any query). No search
    box lists that. Repeats within the words already typed are the user's own. growing: the last word may still
    grow ("stock market stock mar" can become "… marketing"), so it isn't counted yet."""
    text = typed + completion
    words = [w.strip(_PUNCTUATION) for w in text.lower().split()]
    if growing and text[-1:] and not text[-1:].isspace():
        words = words[:-1]
    typed_words = len(typed.split()) - (1 if typed[-1:] and not typed[-1:].isspace() else 0)  # whole ones
    if any(words[i:i + k] == words[i + k:i + 2 * k] and i + 2 * k > typed_words
           for k in range(1, len(words) // 2 + 1) for i in range(len(words) - 2 * k + 1)):
        return True
    typed_all = [w.strip(_PUNCTUATION) for w in typed.lower().split()]  # the word being typed too, as typed
    return any(len(word) > SHORT and word in words[:j] and not (j < len(typed_all) and typed_all[j] == word)
               for j, word in enumerate(words) if j >= typed_words)


SHORT = 3  # letters: words this short (a, to, in, the, for) may come back in any query
_PUNCTUATION = ".,;:!?…"
