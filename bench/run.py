"""The benchmark: every figure measured in one run as a ratio against a baseline measured in the same run.

    python bench/run.py            # prints a Markdown table, writes bench/out/results.json

The model has GPT-2-124M's architecture with random weights (same cost as the real one; built once and cached).
GPT-2's own tokenizer can't be had offline, so it uses the pip-shipped SmolLM2's (49,152 tokens, close to
GPT-2's 50,257); the starter model is fetched the way autocomplete fetches it, if it isn't cached yet.
The peers (bench/peers.py: llama.cpp's llama-bench, ONNX Runtime GenAI) are measured when installed; a peer not
installed has its last figures shown instead (bench/peers_last.json, rewritten whenever they're measured), dated and
labelled as such.

Our model runs on two engines (autocomplete.engine.engine): onnx (ONNX Runtime, the CPU default) and torch. Where a
part measures our model it has a row for each. A model's first export for ONNX Runtime (~30-50 s, cached under
AUTOCOMPLETE_CACHE_DIR) is made before anything is timed (warm_exports). Every figure, ours on either engine and
the baselines' (but the peers', at 1 and at 2 threads), runs on one thread count: AUTOCOMPLETE_THREADS if set, else
autocomplete's idle-core rule at the start of the run (set in AUTOCOMPLETE_THREADS for the processes it starts).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (ENGINES, OUT, PRECISIONS, Table, autocomplete_command, cpu, in_turns, load,  # noqa: E402
                    machine_line, median_times, peak_rss_mb, subprocess_output, threads, warm_exports)
from peers import bench_peers  # noqa: E402


def gpt2_124m(tokenizer_dir: Path) -> Path:
    """GPT-2-124M's architecture, random weights, saved once (safetensors) with the given tokenizer."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    out = OUT / "gpt2-124m-random"
    if (out / "model.safetensors").is_file():
        return out
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


class Clock:
    """A transformers streamer that only notes the time: generate() calls put() with the prompt, then once per new
    token, then end()."""

    def __init__(self):
        self.times: list[float] = []

    def put(self, value) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def bench_decode(directory: Path, table: Table, repeat: int) -> None:
    """Decode speed, greedy, 128 new tokens: autocomplete's loop (autocomplete.text.sample.generate) on each engine
    at fp32 and int8 (--precision auto: int8 on onnx, the default on the CPU; fp32 on torch) vs transformers' generate() fp32 on the same weights, on the GPT-2-sized model
    and on the starter. Decoding is what follows the prompt: its rate is the 127 tokens after the first over the time
    between the first and the last; the time to the first token (the prompt's forward pass) has its own rows."""
    from autocomplete.engine import starter

    decode_against_generate("the starter (SmolLM2-135M)", starter.model_dir(), table, repeat)
    decode_against_generate("GPT-2-124M", directory, table, repeat)


def decode_target(label: str, engine: str, precision: str) -> str:
    from autocomplete.engine.models import resolved_precision

    if engine == "onnx":
        return "≥ 5× (the default)" if "starter" in label and precision == resolved_precision("auto", engine) else ""
    return "exact" if precision == "fp32" else "≥ 2.5×" if "GPT-2" in label else ""


def decode_against_generate(label: str, directory: Path, table: Table, repeat: int) -> None:
    import numpy
    import torch
    from transformers import AutoModelForCausalLM

    from autocomplete.engine import models
    from autocomplete.text.sample import generate

    warm_exports(directory)
    hf = AutoModelForCausalLM.from_pretrained(directory).eval()
    loaded = {(engine, precision): load(directory, precision, engine) for engine in ENGINES
              for precision in PRECISIONS}
    n = 128
    for prompt_len in (8, 512):
        ids = numpy.random.default_rng(0).integers(100, 40000, prompt_len).tolist()

        def baseline() -> list[float]:
            clock = Clock()
            with torch.inference_mode():
                clock.times.append(time.perf_counter())
                hf.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=n, min_new_tokens=n,
                            pad_token_id=0, streamer=clock)
            times = [clock.times[0], *clock.times[2:]]  # the start, then each new token (not the prompt's put)
            assert len(times) == n + 1, "generate() streamed a different number of tokens than asked"
            return times

        def ours(engine) -> list[float]:
            times = [time.perf_counter()]
            for _ in generate(engine, ids, n, temperature=0):
                times.append(time.perf_counter())
            assert len(times) == n + 1, "our loop made a different number of tokens than asked"
            return times

        runs = in_turns({"generate": baseline, **{key: functools.partial(ours, lm.engine)
                                                  for key, lm in loaded.items()}}, repeat)

        def first_token(name) -> float:
            return statistics.median(t[1] - t[0] for t in runs[name])

        def decode_rate(name) -> float:
            return statistics.median((len(t) - 2) / (t[-1] - t[1]) for t in runs[name])

        for engine, precision in loaded:
            table.add(f"decode {engine} {precision}, {label}, after a {prompt_len}-token prompt",
                      "transformers generate() fp32", decode_rate("generate"), decode_rate((engine, precision)),
                      "tok/s", decode_target(label, engine, precision), higher_is_better=True)
        # torch's int8 runs the prompt on the fp32 weights (autocomplete.engine.quant): one torch row for both
        for engine, precision in (("onnx", "fp32"), ("onnx", "int8"), ("torch", "fp32")):
            table.add(f"first token, {engine} {precision}, {label}, after a {prompt_len}-token prompt",
                      "transformers generate() fp32", first_token("generate"), first_token((engine, precision)), "s")
    for lm in loaded.values():
        models.unload(lm)


def command_times(commands: dict[str, list[str]], repeat: int, env: dict | None = None,
                  stdin: bytes | None = None) -> dict[str, float]:
    """Median wall time of a fresh process for each command (what a shell user waits for), taking turns; stdin:
    what is piped in (nothing: /dev/null)."""
    import subprocess

    def process(args: list[str]):
        streams = {"stdin": subprocess.DEVNULL} if stdin is None else {"input": stdin}
        return lambda: subprocess.run(args, **streams, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      env={**os.environ, **(env or {})}, check=True)

    return median_times({name: process(args) for name, args in commands.items()}, repeat)


def first_shown(args: list[str]) -> float:
    """Seconds from starting `args` on a pseudo-terminal (stdout and stderr) until it shows anything at all."""
    import pty
    import select
    import subprocess

    leader, follower = pty.openpty()
    started = time.perf_counter()
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
                               env={**os.environ, "TERM": "xterm"})
    os.close(follower)
    shown = float("nan")
    try:
        while select.select([leader], [], [], 60)[0]:
            if os.read(leader, 4096):
                shown = time.perf_counter() - started
                break
    finally:
        process.kill()
        process.wait()
        os.close(leader)
    return shown


def bench_start_up(directory: Path, table: Table, checks: list[dict], repeat: int) -> None:
    python = sys.executable
    from autocomplete.engine import starter

    warm_exports(directory)
    warm_exports(starter.model_dir())
    one_shot = [*autocomplete_command(), "--no-server", "-m", str(directory), "-n", "1"]
    starter_shot = [*autocomplete_command(), "--no-server", "-m", str(starter.model_dir()), "-n", "1"]
    times = command_times({"torch": [python, "-c", "import torch"],
                           "default settings": [*one_shot, "san"],
                           "greedy -t 0": [*one_shot, "-t", "0", "san"],
                           "starter": [*starter_shot, "san"],
                           "starter, --engine torch": [*starter_shot, "--engine", "torch", "san"],
                           "typer": [python, "-c", "import typer, rich"],
                           "help": [*autocomplete_command(), "--help"]}, repeat)
    for label in ("default settings", "greedy -t 0"):
        table.add(f"cold one-shot, GPT-2-124M, -n 1, {label}", "python -c 'import torch'", times["torch"],
                  times[label], "s", "ours ÷ baseline ≤ 1.3")
    table.add("cold one-shot, the starter (SmolLM2-135M, converted), -n 1, default settings (onnx)",
              "python -c 'import torch'", times["torch"], times["starter"], "s", "ours ÷ baseline ≤ 0.5")
    table.add("cold one-shot, the starter, -n 1, --engine torch", "python -c 'import torch'", times["torch"],
              times["starter, --engine torch"], "s", "")
    table.add("autocomplete --help", "python -c 'import typer, rich'", times["typer"], times["help"], "s",
              "ours ÷ baseline ≤ 3")
    shown = statistics.median(first_shown([*one_shot, "san"]) for _ in range(repeat))
    table.add("cold one-shot on a terminal: first thing shown (the spinner)", "python -c 'import torch'",
              times["torch"], shown, "s", "ours ≤ 0.3 s")
    for label, args in (("cold one-shot -n 1 on the starter, default settings", [*starter_shot, "san"]),
                        ("cold --suggest 5 on the starter, default settings",
                         [*starter_shot[:-2], "--suggest", "5", "san fra"])):
        checks.append(imports_no_torch(label, args))


HEAVY = ("torch", "transformers")  # what the default engine's cold path must not import


def imports_no_torch(label: str, args: list[str]) -> dict:
    """Check: `python -X importtime` on the command lists no torch module (transformers' shown too)."""
    _, err = subprocess_output([args[0], "-X", "importtime", *args[1:]])
    modules = [line.split("|")[-1].strip() for line in err.splitlines() if line.startswith("import time:")]
    found = {heavy: sum(m.split(".")[0] == heavy for m in modules) for heavy in HEAVY}
    passed = bool(modules) and not found["torch"]
    said = ", ".join(f"{count} {heavy} modules" for heavy, count in found.items())
    result = {"check": f"{label}: python -X importtime shows no torch", "passed": passed,
              "detail": f"{len(modules)} modules imported, {said}" if modules else "no -X importtime output"}
    print(f"  check: {result['check']}: {'yes' if passed else 'NO'} ({result['detail']})", file=sys.stderr)
    return result


def bench_api_client(table: Table, repeat: int) -> None:
    """What each HTTP client would add to every --api call: its import, in a fresh interpreter (the packages not
    installed are left out; `pip install openai httpx` to measure them)."""
    import importlib.util

    python = sys.executable
    candidates = {"urllib (ours)": "import urllib.request, http.client, json, ssl",
                  "httpx": "import httpx", "openai": "import openai"}
    runnable = {name: [python, "-c", code] for name, code in candidates.items()
                if name == "urllib (ours)" or importlib.util.find_spec(code.split()[1]) is not None}
    times = command_times({"python": [python, "-c", "pass"], **runnable}, repeat)
    for name in runnable:
        table.add(f"import cost of the --api HTTP client: {name}", "python -c pass", times["python"],
                  times[name], "s", "")


def bench_api(table: Table, repeat: int) -> None:
    """A one-shot --api call against a running engine (llama.cpp's server on the starter's GGUF, if
    llama-cpp-python[server] is installed): what the call costs beyond the engine's own work."""
    import importlib.util
    import socket
    import subprocess
    import urllib.request

    from autocomplete.engine import starter

    if importlib.util.find_spec("llama_cpp") is None:
        print("api: llama-cpp-python[server] is not installed; skipping the --api figures", file=sys.stderr)
        return
    gguf = OUT / "gguf" / Path(starter.MEMBER).name
    if not gguf.is_file():
        gguf.parent.mkdir(parents=True, exist_ok=True)
        starter._fetch(gguf.parent)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}/v1"
    engine = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(base + "/models", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        one = [*autocomplete_command(), "--api", base, "-t", "0", "-n", "1", "--style", "text"]
        times = command_times({"python": [sys.executable, "-c", "pass"], "text": [*one, "The capital of France is"],
                               "healed": [*one, "--style", "query", "stock mar"],
                               "suggest": [*autocomplete_command(), "--api", base, "--suggest", "5", "san fra"]},
                              repeat)
    finally:
        engine.terminate()
        engine.wait(timeout=30)
    table.add("--api one-shot -n 1 on llama.cpp's server (SmolLM2 Q4_1), text style", "python -c pass",
              times["python"], times["text"], "s", "")
    table.add("--api one-shot -n 1, query style, healing \"stock mar\" (logprobs steps)", "python -c pass",
              times["python"], times["healed"], "s", "")
    table.add("--api --suggest 5 \"san fra\" (up to 120 logprobs requests)", "python -c pass", times["python"],
              times["suggest"], "s", "")


def bench_warm(directory: Path, table: Table, repeat: int) -> None:
    """With a warm server running, on each engine: the whole `autocomplete -n 1 "san"` call (an upper bound on the
    time to the first token) against the same call loading the model in process (--no-server); and the server's
    peak memory. The default engine's server is started as a user's is (--engine auto, which picks onnx here)."""
    import tempfile

    from autocomplete.serve import client

    warm_exports(directory)
    for engine in ENGINES:
        chosen = "auto" if engine == "onnx" else engine
        with tempfile.TemporaryDirectory(prefix="ac-bench-", dir="/tmp") as runtime:
            env = {"AUTOCOMPLETE_RUNTIME_DIR": runtime}
            args = [*autocomplete_command(), "-m", str(directory), "-n", "1",
                    *(["--engine", engine] if chosen != "auto" else []), "san"]
            os.environ["AUTOCOMPLETE_RUNTIME_DIR"] = runtime
            try:
                status = client.start(str(directory), "cpu", idle_timeout=120, engine=chosen)
                times = command_times({"cold": [*args[:3], "--no-server", *args[3:]], "warm": args}, repeat, env)
                hwm = next(line for line in Path(f"/proc/{status['pid']}/status").read_text().splitlines()
                           if line.startswith("VmHWM"))
            finally:
                client.stop(str(directory), engine=chosen)
                del os.environ["AUTOCOMPLETE_RUNTIME_DIR"]
        table.add(f"one-shot -n 1 with the warm server, {engine} (= upper bound on first token; the same prompt each "
                  "time: what the server read for it before is reused)",
                  "the same, model loaded in process", times["cold"], times["warm"], "s",
                  "warm ≤ 0.12 s; cold ÷ warm ≥ 10" if engine == "onnx" else "")
        table.add(f"peak RSS, warm server with GPT-2-124M, {engine}", "python -c 'import torch'",
                  peak_rss_mb([sys.executable, "-c", "import torch"]), int(hwm.split()[1]) / 1024, "MB")


def bench_gguf(table: Table) -> None:
    """A GGUF file is converted once (and, on the default engine, exported for ONNX Runtime once); the second load
    reads the converted safetensors and the export."""
    import tempfile

    from autocomplete.engine import models, starter

    gguf = OUT / "gguf" / Path(starter.MEMBER).name
    if not gguf.is_file():
        gguf.parent.mkdir(parents=True, exist_ok=True)
        starter._fetch(gguf.parent)
    saved = os.environ.get("AUTOCOMPLETE_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["AUTOCOMPLETE_CACHE_DIR"] = cache
        try:
            start = time.perf_counter()
            first_lm = models.load(str(gguf), "cpu")
            first = time.perf_counter() - start
            models.unload(first_lm)
            start = time.perf_counter()
            lm = models.load(str(gguf), "cpu")
            second = time.perf_counter() - start
            models.unload(lm)
        finally:
            if saved is None:
                del os.environ["AUTOCOMPLETE_CACHE_DIR"]
            else:
                os.environ["AUTOCOMPLETE_CACHE_DIR"] = saved
    table.add(f"GGUF load (SmolLM2-135M Q4_1), {lm.engine.name}: second load, in process",
              "first load (dequantize + convert" + (" + export for ONNX Runtime)" if lm.engine.name == "onnx" else ")"),
              first, second, "s", "second ≤ 2 s")


def bench_memory(directory: Path, table: Table) -> None:
    warm_exports(directory)
    base = peak_rss_mb([sys.executable, "-c", "import torch"])
    for engine in ENGINES:
        ours = peak_rss_mb([*autocomplete_command(), "--no-server", "-m", str(directory), "--engine", engine, "-n", "1",
                            "san"])
        table.add(f"peak RSS, one-shot GPT-2-124M, {engine}", "python -c 'import torch'", base, ours, "MB")


AGREEMENT_PROMPTS = [
    "The capital of France is", "The best way to learn python is", "Once upon a time, in a small village,",
    "To make a good cup of coffee, you", "The theory of relativity explains", "My favourite recipe for pancakes",
    "In 1969, the first humans", "def fibonacci(n):\n", "The stock market today", "Dear hiring manager, I am writing",
]


def decoded_argmax(engine, prompt: list[int], text: list[int]) -> list[int]:
    """The likeliest next token after the prompt's last token and after each token of `text`, teacher-forced the
    way autocomplete decodes: the prompt in one read, then one token per extend() on its state."""
    logits, state = engine.read(prompt, room=len(text))
    picks = [int(logits.argmax())]
    for token in text:
        picks.append(int(engine.extend(state, token).argmax()))
    return picks


def agreement(reference, candidate, encode, positions: int = 32) -> float:
    """Teacher-forced top-1 agreement: feed both engines the same text (each prompt plus the reference's own
    greedy continuation) and count the positions where their likeliest next token is the same."""
    from autocomplete.text.sample import generate

    same = total = 0
    for prompt in AGREEMENT_PROMPTS:
        ids = encode(prompt)
        text = list(generate(reference, ids, positions, temperature=0))[:-1]
        a, b = decoded_argmax(reference, ids, text), decoded_argmax(candidate, ids, text)
        same += sum(x == y for x, y in zip(a, b))
        total += len(a)
    return same / total


def engines_on_threads(directory: Path, engine: str, count: int) -> dict:
    """fp32 and int8 on `engine` running on `count` threads (ONNX Runtime: sessions of their own, as a session's
    threads are fixed when it opens; torch: set for the process, so read them before another count is set)."""
    import torch

    from autocomplete.engine import onnx_engine, onnx_run

    if engine == "torch":
        torch.set_num_threads(count)
        return {precision: load(directory, precision, "torch").engine for precision in PRECISIONS}
    return {precision: onnx_engine.OnnxEngine(onnx_run.open_session(
        onnx_engine.exported(directory, precision, directory.name), count), precision) for precision in PRECISIONS}


def bench_agreement(notes: list[str]) -> None:
    """int8 vs fp32 on each engine, on 1 thread and on every core."""
    import torch

    from autocomplete.engine import starter

    directory = starter.model_dir()
    warm_exports(directory)
    encode = load(directory, "fp32", "onnx").encode
    chosen = torch.get_num_threads()
    # fp32 sums in another order with another thread count (logits move ~1e-5), and int8's rounding turns some
    # of those nudges into another top-1 token: the same code measures differently, so both counts are shown.
    for engine in ENGINES:
        shares = {}
        for count in sorted({1, os.cpu_count() or 1}):
            ran = engines_on_threads(directory, engine, count)
            shares[count] = agreement(ran["fp32"], ran["int8"], encode)
        torch.set_num_threads(chosen)
        shown = ", ".join(f"{share:.1%} with {count} thread{'s' * (count > 1)}" for count, share in shares.items())
        notes.append(f"{engine} int8 vs {engine} fp32 teacher-forced top-1 agreement on SmolLM2-135M "
                     f"({len(AGREEMENT_PROMPTS)} prompts × 32 positions): {shown} (target ≥ 97%)")
        print("  " + notes[-1], file=sys.stderr)


def bench_suggest(lm, hf, table: Table, repeat: int) -> None:
    """--suggest 5: one best-first search vs five separate generate() runs of the same length."""
    import torch

    from autocomplete.settings import Settings
    from autocomplete.text.suggest import suggest

    prefix = "The best way to learn"
    ids = lm.encode(prefix)
    # The text style: random weights give no query a likely end, so a query-style search would only measure its
    # expansion bound. The query style's latency is measured on the real starter model (the quality part).
    settings = Settings(temperature=1.0, top_k=0, top_p=1.0, style="text")

    def ours():
        lm.prefixes = None  # a search from scratch: nothing an earlier repetition read is remembered
        suggest(lm, prefix, settings, n=5, words=3)

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
    each set (bench/quality.py keystroke_success)."""
    import quality as query_quality
    from autocomplete.engine import models, starter
    from autocomplete.settings import Settings
    from autocomplete.text.suggest import KEYSTROKE_READS, suggest
    from peers import LlamaBench, llama_bench, quantized, starter_gguf

    directory = starter.model_dir()
    warm_exports(directory)
    sets = {"everyday": query_quality.load_queries(), **query_quality.load_sets()}
    typed = [prefix for queries in sets.values() for prefix, _ in queries[:TYPED_QUERIES]]
    lm = models.load(str(directory), "cpu")
    settings = Settings(style="query")
    suggest(lm, "warm up", settings)  # the frame's cache, the vocabulary

    def typing(reads: int | None) -> Callable[[], list[float]]:
        def run() -> list[float]:
            lm.prefixes = None  # each repetition starts with nothing remembered
            times = []
            for query in typed:
                for end in range(1, len(query) + 1):
                    start = time.perf_counter()
                    suggest(lm, query[:end], settings, n=5, reads=reads)
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
        per_token = _generate_per_token(directory, lm.encode(typed[0]))
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
    for name, queries in {"everyday, 3+ letters": sets["everyday"],
                          "everyday, 1-2 letters": query_quality.load_queries(query_quality.SHORT),
                          **{f"names: {k}": v for k, v in sets.items() if k != "everyday"}}.items():
        notes.append(f"the REPL's list (≤ {KEYSTROKE_READS} new rows a keystroke), each of {len(queries)} prefixes "
                     f"({name}) typed letter by letter: the right word in the last list's 5 for "
                     f"{query_quality.keystroke_success(lm, queries, KEYSTROKE_READS):.0%}")
        print("  " + notes[-1], file=sys.stderr)
    models.unload(lm)


def _generate_per_token(directory: Path, ids: list[int]) -> Callable[[], float]:
    """transformers generate()'s time per token, greedy, 64 tokens after `ids`."""
    import torch
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(directory).eval()
    n = 64

    def per_token() -> float:
        clock = Clock()
        with torch.inference_mode():
            hf.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=n, min_new_tokens=n, pad_token_id=0,
                        streamer=clock)
        return (clock.times[-1] - clock.times[1]) / (len(clock.times) - 2)
    return per_token


def bench_web(table: Table, repeat: int) -> None:
    """autocomplete --web (autocomplete.ui.web): its HTTP stack, the standard library's, against Starlette + uvicorn
    (what `transformers serve` brings): the import in a fresh interpreter, and one small JSON answer on a kept-alive
    connection (/info, 200 in a row); and a search box's keystrokes through the page's /suggest?keystroke=1 against
    the same suggest() called in process (bench_keystrokes' typing, the starter, the same run)."""
    import http.client
    import subprocess
    import threading

    from autocomplete.engine import models, starter
    from autocomplete.settings import Settings
    from autocomplete.text.suggest import KEYSTROKE_READS, suggest
    from autocomplete.ui import web
    import quality as query_quality

    def imported(code: str) -> Callable[[], float]:
        def run() -> float:
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            return time.perf_counter() - started
        return run

    baseline = imported("pass")
    stacks = {"stdlib": "import http.server, json", "starlette": "import starlette.applications, uvicorn"}
    runs = in_turns({"bare": baseline, **{name: imported(code) for name, code in stacks.items()}}, repeat)
    bare = statistics.median(runs["bare"])
    table.add("import of the HTTP stack, over a bare interpreter (s)", "starlette + uvicorn",
              statistics.median(runs["starlette"]) - bare, statistics.median(runs["stdlib"]) - bare, "s")

    def per_request(port: int, host: str) -> Callable[[], float]:
        def run() -> float:
            conn = http.client.HTTPConnection("127.0.0.1", port)
            conn.request("GET", "/info", headers={"Host": host})
            conn.getresponse().read()
            started = time.perf_counter()
            for _ in range(200):
                conn.request("GET", "/info", headers={"Host": host})
                conn.getresponse().read()
            conn.close()
            return (time.perf_counter() - started) / 200
        return run

    directory = starter.model_dir()
    warm_exports(directory)
    lm = models.load(str(directory), "cpu")
    settings = Settings(style="query")
    site = web.Site(0, settings)
    site.answers = web.Local(lm)
    site.bucket = web.Bucket(1e9, 10**9)  # the bench is no abuser
    threading.Thread(target=site.serve_forever, daemon=True).start()
    ours = per_request(site.port, f"127.0.0.1:{site.port}")

    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    info = site.info()
    app = Starlette(routes=[Route("/info", lambda request: JSONResponse(info))])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    runs = in_turns({"ours": ours, "starlette": per_request(port, f"127.0.0.1:{port}")}, repeat)
    table.add("one /info answer on a kept-alive connection (s)", "starlette + uvicorn",
              statistics.median(runs["starlette"]), statistics.median(runs["ours"]), "s")
    server.should_exit = True

    lines = [line.replace("|", "") for line in query_quality.QUERIES.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")][:TYPED_QUERIES]
    suggest(lm, "warm up", settings)
    conn = http.client.HTTPConnection("127.0.0.1", site.port)

    def typing(over_http: bool) -> Callable[[], float]:
        from urllib.parse import quote

        def run() -> float:
            lm.prefixes = None  # each repetition starts with nothing remembered
            times = []
            for query in lines:
                for end in range(1, len(query) + 1):
                    started = time.perf_counter()
                    if over_http:
                        conn.request("GET", f"/suggest?q={quote(query[:end])}&n=5&keystroke=1",
                                     headers={"Host": f"127.0.0.1:{site.port}"})
                        conn.getresponse().read()
                    else:
                        suggest(lm, query[:end], settings, n=5, reads=KEYSTROKE_READS)
                    times.append(time.perf_counter() - started)
            return statistics.fmean(times)
        return run

    runs = in_turns({"in process": typing(False), "page": typing(True)}, repeat)
    table.add(f"per keystroke, {TYPED_QUERIES} queries typed letter by letter, the page's /suggest (5, as the REPL's "
              f"list), the starter, {lm.engine.name} (mean, s)", "suggest() in process",
              statistics.median(runs["in process"]), statistics.median(runs["page"]), "s", "≤ 1.05×")
    site.shutdown()
    models.unload(lm)


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


PARTS = ["decode", "peers", "agreement", "start-up", "warm", "api-client", "api", "suggest", "keystrokes", "web",
         "gguf", "memory", "quality", "odd-words"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per figure (the median is kept)")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=PARTS, metavar="PART",
                        help=f"measure only these parts: {', '.join(PARTS)}")
    args = parser.parse_args()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import warnings

    warnings.simplefilter("ignore")
    import torch

    from autocomplete.engine import models, starter
    from autocomplete.engine.engine import idle_cores

    # One thread count for every figure, ours on either engine and the baselines', in this process and in the
    # ones it starts: what autocomplete picks on this machine now (AUTOCOMPLETE_THREADS if set), before the
    # benchmark's own work makes a core look busy. ONNX Runtime's sessions read it from AUTOCOMPLETE_THREADS.
    os.environ["AUTOCOMPLETE_THREADS"] = str(idle_cores())
    torch.set_num_threads(threads())
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine_line(with_load=False)}", file=sys.stderr)
    print("preparing the GPT-2-124M-sized model…", file=sys.stderr)
    directory = gpt2_124m(starter.model_dir())
    table, notes, checks, failed = Table(), [], [], []
    parts = set(args.only)

    def part(name: str, run: Callable[[], object]):
        """One part, if asked for: a part that fails is reported (stderr, the output, results.json), the rest run."""
        if name not in parts:
            return None
        try:
            return run()
        except Exception as error:
            import traceback

            traceback.print_exc()
            said = (str(error).strip() or type(error).__name__).splitlines()[0][:300]
            failed.append(f"{name}: {type(error).__name__}: {said}")
            print(f"  FAILED: {failed[-1]}", file=sys.stderr)
            return None

    def suggest_part() -> None:
        from transformers import GPT2LMHeadModel

        bench_suggestion_lists(table, args.repeat)
        warm_exports(directory)
        hf = GPT2LMHeadModel.from_pretrained(directory).eval()  # baselines: transformers on the same weights
        for engine in ENGINES:
            lm = load(directory, "fp32", engine)
            bench_suggest(lm, hf, table, args.repeat)
            bench_ghost(lm, hf, table, args.repeat)
            bench_list(lm, hf, table, args.repeat)

    def quality_part() -> list[dict]:
        warm_exports(starter.model_dir())
        lm = models.load(str(starter.model_dir()), "cpu")  # the default engine
        print(f"  quality on the {lm.engine.name} engine", file=sys.stderr)
        return query_quality.run(lm)

    def odd_part() -> list[dict]:
        from autocomplete.settings import Settings

        warm_exports(starter.model_dir())
        lm = models.load(str(starter.model_dir()), "cpu")
        # the defaults, and the top-p they had before issue 19 (the same T and top-k)
        return [query_quality.odd_words(lm, settings) for settings in (Settings(), Settings(top_p=0.95))]

    import quality as query_quality

    part("decode", lambda: bench_decode(directory, table, args.repeat))
    part("peers", lambda: bench_peers(directory, table, notes, args.repeat))
    part("agreement", lambda: bench_agreement(notes))
    part("start-up", lambda: bench_start_up(directory, table, checks, args.repeat))
    part("warm", lambda: bench_warm(directory, table, args.repeat))
    part("api-client", lambda: bench_api_client(table, args.repeat))
    part("api", lambda: bench_api(table, args.repeat))
    part("suggest", suggest_part)
    part("keystrokes", lambda: bench_keystrokes(table, notes, args.repeat))
    part("web", lambda: bench_web(table, args.repeat))
    part("gguf", lambda: bench_gguf(table))
    part("memory", lambda: bench_memory(directory, table))
    quality = part("quality", quality_part)
    odd = part("odd-words", odd_part)

    machine = machine_line()
    print(f"Machine: {machine}\n")
    print(table.markdown())
    for check in checks:
        print(f"\nCheck: {check['check']}: {'yes' if check['passed'] else 'NO'} ({check['detail']})")
    for note in notes:
        print(f"\n{note}")
    for failure in failed:
        print(f"\nFAILED, no figures: {failure}")
    if quality:
        print("\nQuery autocomplete on the starter model (SmolLM2-135M), everyday queries typed mid-word "
              "(bench/queries.txt: 3 letters of the last word or more; bench/queries_short.txt: 1-2), targets (query "
              "style, healing on): 3+ letters success@5 ≥ 95%, greedy ≥ 90%; 1-2 letters success@5 ≥ 90%, greedy "
              "≥ 80%:\n")
        print(query_quality.markdown(quality))
    if odd:
        print(f"\nDefault one-shot completions on the starter, every prefix of both sets, {query_quality.SEEDS} seeds "
              "each: how many hold a word the model itself finds unlikely where it stands (autocomplete's defaults, "
              "then the top-p they had before):\n")
        print(query_quality.odd_markdown(odd))
    (OUT / "results.json").write_text(json.dumps({"machine": machine, "cpu": cpu(), "threads": threads(),
                                                  "figures": table.rows, "checks": checks, "notes": notes,
                                                  "failed": failed, "quality": quality, "odd_words": odd}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
