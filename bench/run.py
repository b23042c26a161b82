"""The benchmark: every figure measured in one run as a ratio against a baseline measured in the same run.

    python bench/run.py            # prints a Markdown table, writes bench/out/results.json

The model has GPT-2-124M's architecture with random weights (same cost as the real one; built once and cached).
GPT-2's own tokenizer can't be had offline, so it uses the pip-shipped SmolLM2's (49,152 tokens, close to
GPT-2's 50,257); the starter model is fetched the way autocomplete fetches it, if it isn't cached yet.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"


def median_time(fn, repeat: int) -> float:
    fn()  # warm-up: first calls pay for allocation and lazy initialisation
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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


class Table:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, figure: str, baseline_name: str, baseline: float, ours: float, unit: str, target: str = "",
            higher_is_better: bool = False) -> None:
        """ratio is ours ÷ baseline in the figure's own unit (tok/s: higher is better; s and MB: lower is)."""
        self.rows.append({"figure": figure, "baseline": baseline_name, "baseline_value": baseline, "ours": ours,
                          "unit": unit, "ratio": ours / baseline, "target": target})
        print(f"  {figure}: baseline {baseline:.4g} {unit}, ours {ours:.4g} {unit}, ours/baseline "
              f"{ours / baseline:.2f}", file=sys.stderr)

    def markdown(self) -> str:
        lines = ["| figure | baseline | baseline value | ours | ours ÷ baseline | target |",
                 "|---|---|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r['figure']} | {r['baseline']} | {r['baseline_value']:.4g} {r['unit']} | "
                         f"{r['ours']:.4g} {r['unit']} | {r['ratio']:.2f} | {r['target']} |")
        return "\n".join(lines)


def bench_decode(directory: Path, table: Table, repeat: int) -> None:
    """Decode speed, greedy, 128 new tokens: autocomplete's loop (fp32 = the default, and int8) vs transformers'
    GPT2LMHeadModel.generate() fp32 on the same weights."""
    import torch
    from transformers import GPT2LMHeadModel

    from autocomplete import models
    from autocomplete.generate import generate

    hf = GPT2LMHeadModel.from_pretrained(directory).eval()
    for prompt_len in (8, 512):
        ids = torch.randint(100, 40000, (prompt_len,), generator=torch.Generator().manual_seed(0)).tolist()
        n = 128

        def baseline():
            with torch.inference_mode():
                hf.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=n, min_new_tokens=n, pad_token_id=0)

        base = n / median_time(baseline, repeat)
        for precision in ("fp32", "int8"):
            model = models.load(str(directory), "cpu", precision).model

            def ours():
                for _ in generate(model, ids, n, temperature=0):
                    pass

            table.add(f"decode {precision}, {prompt_len}-token prompt, 128 new tokens", "transformers generate() fp32",
                      base, n / median_time(ours, repeat), "tok/s", "≥ 2.5×" if precision == "int8" else "exact",
                      higher_is_better=True)


def command_time(args: list[str], repeat: int, env: dict | None = None) -> float:
    """Median wall time of a fresh process (what a shell user waits for)."""
    import subprocess

    def run():
        subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, **(env or {})}, check=True)

    return median_time(run, repeat)


def autocomplete_command() -> list[str]:
    return [sys.executable, "-m", "autocomplete"]


def bench_start_up(directory: Path, table: Table, repeat: int) -> None:
    python = sys.executable
    torch_import = command_time([python, "-c", "import torch"], repeat)
    for label, extra in (("default settings", []), ("greedy -t 0", ["-t", "0"])):
        cold = command_time([*autocomplete_command(), "--no-server", "-m", str(directory), "-n", "1", *extra, "san"],
                            repeat)
        table.add(f"cold one-shot, GPT-2-124M, -n 1, {label}", "python -c 'import torch'", torch_import, cold, "s",
                  "ours ÷ baseline ≤ 1.5")
    help_time = command_time([*autocomplete_command(), "--help"], repeat)
    table.add("autocomplete --help", "python -c 'import typer, rich'",
              command_time([python, "-c", "import typer, rich"], repeat), help_time, "s", "ours ÷ baseline ≤ 3")


def bench_warm(directory: Path, table: Table, repeat: int) -> None:
    """With a warm server running: the whole `autocomplete -n 1 "san"` call (an upper bound on the time to the
    first token) against the same call loading the model in process; and the server's peak memory."""
    import tempfile

    from autocomplete import client

    with tempfile.TemporaryDirectory(prefix="ac-bench-", dir="/tmp") as runtime:
        env = {"AUTOCOMPLETE_RUNTIME_DIR": runtime}
        args = [*autocomplete_command(), "-m", str(directory), "-n", "1", "san"]
        cold = command_time([*args[:3], "--no-server", *args[3:]], repeat, env)
        os.environ["AUTOCOMPLETE_RUNTIME_DIR"] = runtime
        try:
            status = client.start(str(directory), "cpu", idle_timeout=120)
            warm = command_time(args, repeat, env)
            hwm = next(line for line in Path(f"/proc/{status['pid']}/status").read_text().splitlines()
                       if line.startswith("VmHWM"))
        finally:
            client.stop(str(directory))
            del os.environ["AUTOCOMPLETE_RUNTIME_DIR"]
    table.add("one-shot -n 1 with the warm server (= upper bound on first token)", "the same, model loaded in process",
              cold, warm, "s", "warm ≤ 0.15 s; cold ÷ warm ≥ 10")
    table.add("peak RSS, warm server with GPT-2-124M", "python -c 'import torch'",
              peak_rss_mb([sys.executable, "-c", "import torch"]), int(hwm.split()[1]) / 1024, "MB")


def bench_gguf(table: Table) -> None:
    """A GGUF file is converted once; the second load reads the converted safetensors."""
    import tempfile

    from autocomplete import models, starter

    gguf = OUT / "gguf" / Path(starter.MEMBER).name
    if not gguf.is_file():
        gguf.parent.mkdir(parents=True, exist_ok=True)
        starter._fetch(gguf.parent)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["AUTOCOMPLETE_CACHE_DIR"] = cache
        try:
            start = time.perf_counter()
            models.convert_gguf(gguf)
            first = time.perf_counter() - start
            models._loaded.clear()
            start = time.perf_counter()
            models.load(str(gguf), "cpu")
            second = time.perf_counter() - start
        finally:
            del os.environ["AUTOCOMPLETE_CACHE_DIR"]
    table.add("GGUF load (SmolLM2-135M Q4_1): second load, in process", "first load (dequantize + convert)", first,
              second, "s", "second ≤ 2 s")


def peak_rss_mb(args: list[str]) -> float:
    """Peak resident memory of a fresh process running `args`, in MB."""
    import subprocess

    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, "
             "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True).stdout
    return int(out) / 1024


def bench_memory(directory: Path, table: Table) -> None:
    base = peak_rss_mb([sys.executable, "-c", "import torch"])
    ours = peak_rss_mb([*autocomplete_command(), "--no-server", "-m", str(directory), "-n", "1", "san"])
    table.add("peak RSS, one-shot GPT-2-124M", "python -c 'import torch'", base, ours, "MB")


AGREEMENT_PROMPTS = [
    "The capital of France is", "The best way to learn python is", "Once upon a time, in a small village,",
    "To make a good cup of coffee, you", "The theory of relativity explains", "My favourite recipe for pancakes",
    "In 1969, the first humans", "def fibonacci(n):\n", "The stock market today", "Dear hiring manager, I am writing",
]


def decoded_argmax(model, prompt: list[int], text: list[int]) -> list[int]:
    """The likeliest next token after the prompt's last token and after each token of `text`, teacher-forced the
    way autocomplete decodes: the prompt in one forward, then one token per forward with the KV cache."""
    import torch

    with torch.inference_mode():
        out = model(input_ids=torch.tensor([prompt]), use_cache=True)
        picks = [int(out.logits[0, -1].argmax())]
        for token in text:
            out = model(input_ids=torch.tensor([[token]]), cache=out.cache, use_cache=True)
            picks.append(int(out.logits[0, -1].argmax()))
    return picks


def agreement(reference, candidate, encode, positions: int = 32) -> float:
    """Teacher-forced top-1 agreement: feed both models the same text (each prompt plus the reference's own
    greedy continuation) and count the positions where their likeliest next token is the same."""
    from autocomplete.generate import generate

    same = total = 0
    for prompt in AGREEMENT_PROMPTS:
        ids = encode(prompt)
        text = list(generate(reference, ids, positions, temperature=0))[:-1]
        a, b = decoded_argmax(reference, ids, text), decoded_argmax(candidate, ids, text)
        same += sum(x == y for x, y in zip(a, b))
        total += len(a)
    return same / total


def bench_agreement(notes: list[str]) -> None:
    from autocomplete import models, starter

    directory = str(starter.model_dir())
    fp32 = models.load(directory, "cpu", "fp32")
    int8 = models.load(directory, "cpu", "int8")
    share = agreement(fp32.model, int8.model, fp32.encode)
    notes.append(f"int8 vs fp32 teacher-forced top-1 agreement on SmolLM2-135M "
                 f"({len(AGREEMENT_PROMPTS)} prompts × 32 positions): {share:.1%} (target ≥ 97%)")
    print("  " + notes[-1], file=sys.stderr)


def bench_suggest(lm, hf, table: Table, repeat: int) -> None:
    """--suggest 5: one best-first search vs five separate generate() runs of the same length."""
    import torch

    from autocomplete.settings import Settings
    from autocomplete.suggest import suggest

    prefix = "The best way to learn"
    ids = lm.encode(prefix)
    settings = Settings(temperature=1.0, top_k=0, top_p=1.0)

    def ours():
        suggest(lm, prefix, settings, n=5, words=3)

    def naive():  # five sampled continuations of about three words (~4 tokens each)
        for seed in range(5):
            torch.manual_seed(seed)
            hf.generate(torch.tensor([ids]), do_sample=True, max_new_tokens=4, min_new_tokens=4, pad_token_id=0)

    table.add("--suggest 5 latency (s)", "5 × generate(do_sample, 4 tokens)", median_time(naive, repeat),
              median_time(ours, repeat), "s")


def bench_ghost(lm, hf, table: Table, repeat: int) -> None:
    """REPL ghost text: from a keystroke (the call) to the grey words being ready, debounce included,
    vs transformers generate() of the same number of tokens."""
    import torch

    from autocomplete.ghost import Ghost

    ghost = Ghost(lambda: lm)
    text = "The best way to learn python is"
    ids = lm.encode(text)
    tokens = len(lm.encode(text + ghost(text))) - len(ids)
    n = max(1, tokens)

    def baseline():
        hf.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=n, min_new_tokens=n, pad_token_id=0)

    table.add(f"keystroke → ghost text ({n} tokens, {ghost.debounce * 1000:.0f} ms debounce) (s)",
              f"generate() of {n} tokens", median_time(baseline, repeat), median_time(lambda: ghost(text), repeat),
              "s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per figure (the median is kept)")
    args = parser.parse_args()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import warnings

    warnings.simplefilter("ignore")
    import torch

    from autocomplete import models, starter

    # One thread count for every figure, ours and the baselines, in this process and in the ones it starts:
    # what autocomplete picks on this machine now, before the benchmark's own work makes a core look busy.
    models.choose_threads()
    os.environ["AUTOCOMPLETE_THREADS"] = str(torch.get_num_threads())
    OUT.mkdir(parents=True, exist_ok=True)
    print("preparing the GPT-2-124M-sized model…", file=sys.stderr)
    directory = gpt2_124m(starter.model_dir())
    table, notes = Table(), []
    bench_decode(directory, table, args.repeat)
    bench_agreement(notes)
    bench_start_up(directory, table, args.repeat)
    bench_warm(directory, table, args.repeat)
    lm = models.load(str(directory), "cpu")
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel.from_pretrained(directory).eval()  # baselines: transformers on the same weights
    bench_suggest(lm, hf, table, args.repeat)
    bench_ghost(lm, hf, table, args.repeat)
    bench_gguf(table)
    bench_memory(directory, table)

    machine = (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
               f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f} at the end")
    print(f"Machine: {machine}\n")
    print(table.markdown())
    for note in notes:
        print(f"\n{note}")
    (OUT / "results.json").write_text(json.dumps({"machine": machine, "figures": table.rows, "notes": notes},
                                                 indent=2))


if __name__ == "__main__":
    main()
