"""Styles: a prompt is completed as a search query (behind a hidden frame of example queries) or as plain text.

A language model continuing raw text doesn't know it is completing a query: typed "san", it writes a URL. Put
a short list of everyday queries, one per line, before the prompt, and the likeliest continuation becomes a
likely query that ends at the line's end. The frame is never shown; its KV cache is computed once per model
(autocomplete.text.prompt).
"""

from __future__ import annotations

import re
from pathlib import Path

from autocomplete.errors import UsageError

# Varied everyday queries, lower case as people type them; no topic, place or name on purpose. Not a test list:
# the quality benchmark's prefixes (bench/) are kept apart from these.
EXAMPLES = (
    "how to reset iphone to factory settings",
    "weather tomorrow",
    "chicken curry recipe easy",
    "best budget laptop for students",
    "what does ubiquitous mean",
    "flights from chicago to denver",
    "how many calories in a banana",
    "premier league table",
    "symptoms of vitamin d deficiency",
    "convert 5 miles to km",
    "movies playing near me",
    "how to write a cover letter",
    "why is the sky blue",
    "cheap hotels in lisbon",
    "python sort list of tuples",
    "when is the next full moon",
    "dentist open on saturday",
    "how long to boil eggs",
    "translate thank you to japanese",
    "us dollar to euro exchange rate",
    "who wrote pride and prejudice",
    "easy houseplants for low light",
    "how to get rid of fruit flies",
    "best hiking trails nearby",
    "excel vlookup formula example",
    "what time is sunset today",
    "how to lower blood pressure naturally",
    "used cars for sale",
    "piano lessons for adults",
    "how to train a puppy to sit",
    "income tax calculator",
    "mount everest height",
)

MAX_EXAMPLES_BYTES = 1 << 20  # a sample of a query log, not the log itself


# A sentence ends inside the prompt (". Then", not "u.s. open"), or the prompt ends like a sentence (a question
# mark excepted: people type questions into search boxes).
_SENTENCE = re.compile(r"[.!?…;:]\s+(?![a-z])|[.!…;:]$|[。！？]")


def resolve(style: str, text: str) -> str:
    """The style that runs: auto is query for a short one-line prompt (8 words at most, no sentence
    punctuation), text for anything longer or on several lines (piped notes, documents)."""
    if style != "auto":
        return style
    stripped = text.strip()
    if "\n" in stripped or len(stripped.split()) > 8 or _SENTENCE.search(stripped):
        return "text"
    return "query"


def read_examples(path: str) -> list[str]:
    """The user's own example queries, one per line, for --examples. Any problem is a usage error (exit 2)."""
    file = Path(path).expanduser()
    try:
        if file.is_dir():
            raise UsageError(f"--examples {path}: a directory, not a file of example queries")
        with file.open("rb") as f:  # read up to the bound, not by the size stat() says: a pipe or FIFO has none
            data = f.read(MAX_EXAMPLES_BYTES + 1)
        if len(data) > MAX_EXAMPLES_BYTES:
            raise UsageError(f"--examples {path}: too large (at most 1 MiB; a sample of a few hundred queries is "
                             "plenty)")
    except FileNotFoundError:
        raise UsageError(f"--examples {path}: no such file") from None
    except OSError as error:
        raise UsageError(f"--examples {path}: {error.strerror or error}") from None
    if b"\0" in data:
        raise UsageError(f"--examples {path}: a binary file, not one example query per line")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"--examples {path}: not UTF-8 text") from None
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise UsageError(f"--examples {path}: no example queries in it (one per line)")
    return lines
