"""Query-autocomplete quality on the pip-shipped SmolLM2: is the word being typed completed right?

    python bench/quality.py          # or as part of: python bench/run.py --only quality

Each line of bench/queries.txt is an everyday query with "|" where the typing stops, mid-word ("stock mar|ket");
bench/queries_short.txt stops after one or two letters of the last word ("new yo|rk"); bench/names.txt holds sets
of names (cities, states and regions, countries, people, brands) typed 1-6 letters in ("las ve|gas"), in lower case
as people type them, measured in the query style with healing on. None of them is in the frame or the product.
For every style (query, text), with and without token healing, it measures over the prefixes:
- success@1 / success@5: the typed word completed right by the first / any of the top-5 `--suggest 5` rows,
- MRR: the mean of 1 / rank of the first right row (0 when none is),
- greedy: the typed word completed right by the one-shot completion at temperature 0,
- the median time of one suggestion list, warm (model loaded, frame cached).
"""

from __future__ import annotations

import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from report import UNLIKELY, quality_row, quality_table

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ROOT / "bench" / "queries.txt"
SHORT = ROOT / "bench" / "queries_short.txt"  # only 1-2 letters of the last word typed
NAMES = ROOT / "bench" / "names.txt"  # places, people, brands typed 1-6 letters in, in sets: "# [cities]"
PUNCTUATION = ".,;:!?\"'()"


def load_queries(path: Path = QUERIES) -> list[tuple[str, str]]:
    """(typed, the whole word being typed) per line."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        typed, rest = line.split("|", 1)
        out.append((typed, typed.split()[-1] + rest.split(" ", 1)[0]))
    return out


def load_sets(path: Path = NAMES) -> dict[str, list[tuple[str, str]]]:
    """A file of sets, each headed "# [name]": {name: (typed, the whole word being typed) per line}."""
    sets: dict[str, list[tuple[str, str]]] = {}
    name = path.stem
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# [") and line.rstrip().endswith("]"):
            name = line.strip()[3:-1]
        elif line.strip() and not line.startswith("#"):
            typed, rest = line.split("|", 1)
            sets.setdefault(name, []).append((typed, typed.split()[-1] + rest.split(" ", 1)[0]))
    return sets


def completes(typed: str, word: str, text: str) -> bool:
    """Whether `text` (the typed prefix and what was added) has the whole `word` where the typing stopped (its
    possessive too: "barack obama's speech" completes "barack oba|ma")."""
    at = len(typed.split()) - 1
    words = text.split()
    if len(words) <= at:
        return False
    said = words[at].lower().strip(PUNCTUATION)
    return word.lower() in (said, said.removesuffix("'s"), said.removesuffix("’s"))


@contextmanager
def healing(on: bool):
    """Token healing off: no word is taken back out of the prompt (a measurement switch, not a product one)."""
    from autocomplete.text import prompt

    original = prompt.back_up
    if not on:
        prompt.back_up = lambda ids, vocab: (ids, b"")
    try:
        yield
    finally:
        prompt.back_up = original


def evaluate(lm, queries: list[tuple[str, str]], style: str, heal: bool, typed: str = "3+ letters") -> dict:
    from autocomplete.text.complete import complete
    from autocomplete.settings import Params
    from autocomplete.text.suggest import suggest

    params = Params(style=style)
    greedy = Params(temperature=0, style=style)
    at1 = at5 = greedy_right = 0
    reciprocal, times = [], []
    with healing(heal):
        suggest(lm, "warm up", params)  # the frame's cache, the vocabulary index
        for prefix, word in queries:
            start = time.perf_counter()
            found = suggest(lm, prefix, params, n=5, words=3)
            times.append(time.perf_counter() - start)
            ranks = [i for i, s in enumerate(found, 1) if completes(prefix, word, prefix + s.completion)]
            at1 += bool(ranks and ranks[0] == 1)
            at5 += bool(ranks)
            reciprocal.append(1 / ranks[0] if ranks else 0.0)
            done = complete(lm, prefix, greedy, lambda piece: None)
            greedy_right += completes(prefix, word, prefix + done.completion)
    n = len(queries)
    return {"typed": typed, "style": style, "healing": heal, "prefixes": n, "success@1": at1 / n, "success@5": at5 / n,
            "mrr": statistics.fmean(reciprocal), "greedy": greedy_right / n,
            "suggest_latency_s": statistics.median(times)}


def keystroke_success(lm, queries: list[tuple[str, str]], reads: int | None) -> float:
    """The REPL's list as it is used: each prefix typed letter by letter in one warm process (what a keystroke read,
    the next reuses), one list of 5 a keystroke with this read bound; the share of prefixes whose last list has the
    typed word completed right."""
    from autocomplete.settings import Params
    from autocomplete.text.suggest import suggest

    params = Params(style="query")
    lm.prefixes = None  # nothing remembered from before this set
    right = 0
    for prefix, word in queries:
        for end in range(1, len(prefix) + 1):
            found = suggest(lm, prefix[:end], params, n=5, reads=reads)
        right += any(completes(prefix, word, prefix + s.completion) for s in found)
    return right / len(queries)


def run(lm) -> list[dict]:
    queries, short = load_queries(), load_queries(SHORT)
    rows = []
    for typed, chosen, styles in (("3+ letters", queries, ("query", "text")), ("1-2 letters", short, ("query",))):
        for style in styles:
            for heal in (True, False):
                rows.append(evaluate(lm, chosen, style, heal, typed))
                print(f"  quality {typed}, {style}, healing {'on' if heal else 'off'}: {quality_row(rows[-1])}",
                      file=sys.stderr)
    for name, names in load_sets().items():  # the search box's case: names typed a few letters in
        rows.append(evaluate(lm, names, "query", True, f"names: {name}"))
        print(f"  quality names: {name}: {quality_row(rows[-1])}", file=sys.stderr)
    return rows


SEEDS = 3


def odd_words(lm, params, seeds: int = SEEDS) -> dict:
    """Default one-shot completions (sampled, query style) of every prefix of both sets, `seeds` each: how many hold
    a word the model itself finds unlikely (its probability where it stands, at T 1 and unwarped, the product of
    its tokens', below UNLIKELY: "best pizza in kenslamb"), how many complete the typed word right, and how many
    distinct completions a prefix gets (the variety sampling is for). The typed word, chosen whole
    (autocomplete.text.word), is not counted: its letters were given."""
    import dataclasses

    import numpy as np

    from autocomplete.text.complete import complete
    from autocomplete.text.prompt import vocabulary

    vocab = vocabulary(lm)
    odd = right = n = 0
    distinct, examples = [], []
    for prefix, word in load_queries() + load_queries(SHORT):
        texts = set()
        for seed in range(seeds):
            steps = []

            def observe(logits, token, allowed):
                shifted = logits.astype(np.float64) - float(np.max(logits))
                steps.append((token, float(np.exp(shifted[token]) / np.exp(shifted).sum())))

            done = complete(lm, prefix, dataclasses.replace(params, style="query", seed=seed),
                            lambda piece: None, observe=observe)
            words: list[list] = []  # [text, probability], a token that starts with no letter or digit starts one
            for token, p in steps:
                piece = vocab.text([token])
                if not words or not piece[:1].isalnum():
                    words.append([piece, p])
                else:
                    words[-1][0] += piece
                    words[-1][1] *= p
            unlikely = [w for w, p in words if p < UNLIKELY and any(c.isalnum() for c in w)]
            odd += bool(unlikely)
            if unlikely and len(examples) < 5:
                examples.append(prefix + done.completion)
            right += completes(prefix, word, prefix + done.completion)
            texts.add(done.completion)
            n += 1
        distinct.append(len(texts))
    return {"settings": f"T {params.temperature}, top-k {params.top_k}, top-p {params.top_p}",
            "completions": n, "odd": odd / n, "right": right / n, "distinct": statistics.fmean(distinct),
            "seeds": seeds, "examples": examples}


def main() -> None:
    sys.path.insert(0, str(ROOT))
    import warnings

    warnings.simplefilter("ignore")
    from autocomplete.engine import models, starter

    lm = models.load(str(starter.model_dir()), "cpu")
    rows = run(lm)
    print("Query autocomplete on SmolLM2-135M, prefixes typed mid-word (bench/queries.txt, bench/queries_short.txt):\n")
    print(quality_table(rows))


if __name__ == "__main__":
    main()
