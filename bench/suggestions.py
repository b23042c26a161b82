"""Suggestion lists and the REPL: a list, the ghost text, keystrokes typed letter by letter."""

from __future__ import annotations

import functools
import statistics
import sys
import threading
import time
from collections.abc import Callable

from common import (ENGINES, OUT, Table, autocomplete_command, command_times, in_turns, median_times,
                    subprocess_output, threads, warm_exports)
from decoding import generate_per_token


def bench_suggest(lm, hf, table: Table, repeat: int) -> None:
    """--suggest 5: one best-first search vs five separate generate() runs of the same length."""
    import torch

    from autocomplete.settings import Params
    from autocomplete.text.suggest import suggest

    prefix = "The best way to learn"
    ids = lm.encode(prefix)
    # The text style: random weights give no query a likely end, so a query-style search would only measure its
    # expansion bound. The query style's latency is measured on the real starter model (the quality part).
    params = Params(temperature=1.0, top_k=0, top_p=1.0, style="text")

    def ours():
        lm.prefixes = None  # a search from scratch: nothing an earlier repetition read is remembered
        suggest(lm, prefix, params, n=5, words=3)

    def naive():  # five sampled continuations of about three words (~4 tokens each)
        for seed in range(5):
            torch.manual_seed(seed)
            hf.generate(torch.tensor([ids]), do_sample=True, max_new_tokens=4, min_new_tokens=4, pad_token_id=0)

    times = median_times({"naive": naive, "ours": ours}, repeat)
    table.add(f"--suggest 5 latency, {lm.engine.name} (s)", "5 × generate(do_sample, 4 tokens)", times["naive"],
              times["ours"], "s")


def bench_ghost(lm, hf, table: Table, repeat: int) -> None:
    """REPL ghost text: from a keystroke (the call) to the grey words being ready, debounce included,
    vs transformers generate() of the same number of tokens."""
    import torch

    from autocomplete.ui.ghost import Ghost

    ghost = Ghost(lambda: lm)
    text = "The best way to learn python is"
    ids = lm.encode(text)
    tokens = len(lm.encode(text + ghost(text))) - len(ids)
    n = max(1, tokens)

    def baseline():
        hf.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=n, min_new_tokens=n, pad_token_id=0)

    def ghosted():
        lm.prefixes = None  # from scratch, as bench_list
        ghost(text)

    times = median_times({"generate": baseline, "ghost": ghosted}, repeat)
    table.add(f"keystroke → ghost text, {lm.engine.name} ({n} tokens, {ghost.debounce * 1000:.0f} ms debounce) (s)",
              f"generate() of {n} tokens", times["generate"], times["ghost"], "s")


def bench_list(lm, hf, table: Table, repeat: int) -> None:
    """The REPL's suggestion list (/suggest 5 on): from a keystroke to the list being ready, debounce included,
    nothing remembered from an earlier keystroke, vs five generate() runs of 4 tokens (what listing five sampled
    continuations would cost)."""
    import torch

    from autocomplete.ui.ghost import Ghost
    from autocomplete.settings import Settings

    settings = Settings(temperature=1.0, top_k=0, top_p=1.0, style="text", suggest=5)
    ghost = Ghost(lambda: lm, settings=lambda: settings)
    text = "The best way to learn python is"
    ids = lm.encode(text)

    def baseline():
        for seed in range(5):
            torch.manual_seed(seed)
            hf.generate(torch.tensor([ids]), do_sample=True, max_new_tokens=4, min_new_tokens=4, pad_token_id=0)

    def listed():
        lm.prefixes = None
        assert ghost.suggestions(text, 5)

    times = median_times({"generate": baseline, "list": listed}, repeat)
    table.add(f"keystroke → suggestion list, {lm.engine.name} (5 rows, {ghost.debounce * 1000:.0f} ms debounce) (s)",
              "5 × generate(do_sample, 4 tokens)", times["generate"], times["list"], "s")


SUGGESTION_LISTS = 20


TYPED_QUERIES = 6  # everyday queries typed letter by letter, and as many of each set of names


def bench_keystrokes(table: Table, notes: list[str], repeat: int) -> None:
    """A search box: the first TYPED_QUERIES queries of bench/queries.txt and of each set of bench/names.txt typed
    letter by letter on the starter, one `--suggest 5` per keystroke in one warm process (the default engine, the
    model loaded and the frame read; what one keystroke read, the next may reuse: autocomplete.engine.prefix,
    forgotten between repetitions), as the REPL's list refreshed per keystroke reads (at most KEYSTROKE_READS new rows
    a keystroke, more only while it is empty) and searched in full: the mean and the 95th percentile per keystroke vs
    llama.cpp's time per decoded token (llama-bench tg128, Q8_0, the same threads) in the same run, or transformers
    generate()'s without llama-bench; and how often the REPL's list, typed letter by letter, has the right word in
    each set (bench/quality.py keystroke_success). And the same keystrokes piped into `--suggest 5 --each-line`, the
    command line's way to feed them: the mean a line."""
    import quality as query_quality
    from autocomplete.engine import models, starter
    from autocomplete.settings import Params
    from autocomplete.text.suggest import KEYSTROKE_READS, suggest
    from peers import LlamaBench, llama_bench, quantized, starter_gguf

    directory = starter.model_dir()
    warm_exports(directory)
    sets = {"everyday": query_quality.load_queries(), **query_quality.load_sets()}
    typed = [prefix for queries in sets.values() for prefix, _ in queries[:TYPED_QUERIES]]
    lm = models.load(str(directory), "cpu")
    params = Params(style="query")
    suggest(lm, "warm up", params)  # the frame's cache, the vocabulary

    def typing(reads: int | None) -> Callable[[], list[float]]:
        def run() -> list[float]:
            lm.prefixes = None  # each repetition starts with nothing remembered
            times = []
            for query in typed:
                for end in range(1, len(query) + 1):
                    start = time.perf_counter()
                    suggest(lm, query[:end], params, n=5, reads=reads)
                    times.append(time.perf_counter() - start)
            return times
        return run

    binary = llama_bench()
    q8_0 = quantized(starter_gguf(), OUT / "gguf" / "SmolLM2-135M-Instruct.Q8_0.gguf") if binary else None
    if binary and q8_0:
        llama = LlamaBench(binary)
        baseline = f"{llama.name()}'s time per decoded token (tg128)"
        per_token = functools.partial(llama.token_time, q8_0, threads())
    else:
        baseline = "transformers generate()'s time per token (no llama-bench here)"
        per_token = generate_per_token(directory, lm.encode(typed[0]))
    runs = in_turns({"token": per_token, "typing": typing(KEYSTROKE_READS), "full": typing(None)}, repeat)
    keystrokes = len(runs["typing"][0])
    token = statistics.median(runs["token"])
    for name, how, target in (("typing", f"as the REPL's list (≤ {KEYSTROKE_READS} new rows a keystroke)", "≤ 5×"),
                              ("full", "searched in full", "")):
        what = (f"per keystroke, {len(typed)} queries (everyday and names) typed letter by letter ({keystrokes} "
                f"keystrokes), --suggest 5 each, {how}, one warm process, the starter, {lm.engine.name}")
        table.add(f"{what} (mean, s)", baseline, token,
                  statistics.median(statistics.fmean(t) for t in runs[name]), "s", target)
        table.add(f"{what} (95th percentile, s)", baseline, token,
                  statistics.median(sorted(t)[int(0.95 * len(t))] for t in runs[name]), "s", "")
    # The same keystrokes piped into `--each-line --json` (a line that types on the one before, or that the next one
    # types on, is listed as a keystroke): the time between one list's record and the next, the first (the load) left
    # out; the median of the repetitions' means.
    lines = [query[:end] for query in typed for end in range(1, len(query) + 1)]
    command = [*autocomplete_command(), "--no-server", "-m", str(directory), "--suggest", "5", "--each-line", "--json"]
    piped = statistics.median(statistics.fmean(between_records(command, lines)) for _ in range(repeat))
    table.add(f"per keystroke, the same {len(lines)} keystrokes piped into --suggest 5 --each-line, one process, the "
              f"starter, {lm.engine.name} (mean, s)", baseline, token, piped, "s", "≤ 5×")
    for name, queries in {"everyday, 3+ letters": sets["everyday"],
                          "everyday, 1-2 letters": query_quality.load_queries(query_quality.SHORT),
                          **{f"names: {k}": v for k, v in sets.items() if k != "everyday"}}.items():
        notes.append(f"the REPL's list (≤ {KEYSTROKE_READS} new rows a keystroke), each of {len(queries)} prefixes "
                     f"({name}) typed letter by letter: the right word in the last list's 5 for "
                     f"{query_quality.keystroke_success(lm, queries, KEYSTROKE_READS):.0%}")
        print("  " + notes[-1], file=sys.stderr)
    models.unload(lm)


def between_records(command: list[str], lines: list[str]) -> list[float]:
    """The seconds between each JSON record a process writes and the next, its input given at once."""
    import subprocess

    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    writer = threading.Thread(target=lambda: (process.stdin.write("".join(line + "\n" for line in lines).encode()),
                                              process.stdin.close()))
    writer.start()
    times = [time.perf_counter() for _ in iter(process.stdout.readline, b"")]
    writer.join()
    if process.wait() or len(times) != len(lines):
        raise RuntimeError(f"{' '.join(command)}: exit {process.returncode}, {len(times)} records for {len(lines)} lines")
    return [later - earlier for earlier, later in zip(times, times[1:])]


def bench_suggestion_lists(table: Table, repeat: int) -> None:
    """The issue's figure: `autocomplete --suggest 5 --each-line` in one process (start, load, 20 lists, exit) on
    the starter, the first 20 query prefixes of bench/queries.txt piped in, --engine onnx vs --engine torch."""
    import quality as query_quality

    from autocomplete.engine import starter

    directory = starter.model_dir()
    warm_exports(directory)
    prefixes = [typed for typed, _ in query_quality.load_queries()][:SUGGESTION_LISTS]
    assert len(prefixes) == SUGGESTION_LISTS, f"bench/queries.txt has fewer than {SUGGESTION_LISTS} queries"
    lines = "".join(prefix + "\n" for prefix in prefixes).encode()
    command = [*autocomplete_command(), "--no-server", "-m", str(directory), "--suggest", "5", "--each-line"]
    check = {engine: subprocess_output([*command, "--engine", engine], lines)[0] for engine in ENGINES}
    for engine, out in check.items():  # one line of suggestions per prefix (blank lines are kept for blank inputs)
        assert out.count("\n") >= SUGGESTION_LISTS, f"--engine {engine} printed {out.count(chr(10))} lines: {out!r}"
    times = command_times({engine: [*command, "--engine", engine] for engine in ENGINES}, repeat, stdin=lines)
    table.add(f"{SUGGESTION_LISTS} suggestion lists, --suggest 5 --each-line, one process, the starter: "
              "--engine onnx", "--engine torch", times["torch"], times["onnx"], "s",
              "torch ÷ onnx ≥ 3 (ours ÷ baseline ≤ 0.33)")
