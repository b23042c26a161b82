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
        ratio = ours / baseline if higher_is_better else baseline / ours
        self.rows.append({"figure": figure, "baseline": baseline_name, "baseline_value": baseline, "ours": ours,
                          "unit": unit, "speedup": ratio, "target": target})
        print(f"  {figure}: baseline {baseline:.4g} {unit}, ours {ours:.4g} {unit}, speed-up {ratio:.2f}x",
              file=sys.stderr)

    def markdown(self) -> str:
        lines = ["| figure | baseline | baseline value | ours | speed-up (baseline ÷ ours time) | target |",
                 "|---|---|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r['figure']} | {r['baseline']} | {r['baseline_value']:.4g} {r['unit']} | "
                         f"{r['ours']:.4g} {r['unit']} | {r['speedup']:.2f}× | {r['target']} |")
        return "\n".join(lines)


def bench_decode(lm, table: Table, repeat: int) -> None:
    """Decode speed: autocomplete's loop vs transformers generate(), greedy, 128 new tokens."""
    import torch

    from autocomplete.generate import generate

    for prompt_len in (8, 512):
        ids = torch.randint(100, 40000, (prompt_len,), generator=torch.Generator().manual_seed(0)).tolist()
        n = 128

        def hf():
            lm.model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=n, min_new_tokens=n,
                              pad_token_id=0)

        def ours():
            for _ in generate(lm.model, ids, n, temperature=0):
                pass

        base, mine = median_time(hf, repeat), median_time(ours, repeat)
        table.add(f"decode, {prompt_len}-token prompt, 128 new tokens (tok/s)", "transformers generate() fp32",
                  n / base, n / mine, "tok/s", "≥ 2.5× (issue 4)", higher_is_better=True)


AGREEMENT_PROMPTS = [
    "The capital of France is", "The best way to learn python is", "Once upon a time, in a small village,",
    "To make a good cup of coffee, you", "The theory of relativity explains", "My favourite recipe for pancakes",
    "In 1969, the first humans", "def fibonacci(n):\n", "The stock market today", "Dear hiring manager, I am writing",
]


def agreement(reference, candidate, encode, positions: int = 32) -> float:
    """Teacher-forced top-1 agreement: feed both models the same text (each prompt plus the reference's own
    greedy continuation) and count the positions where their likeliest next token is the same."""
    import torch

    from autocomplete.generate import generate

    same = total = 0
    for prompt in AGREEMENT_PROMPTS:
        ids = encode(prompt)
        text = ids + list(generate(reference, ids, positions, temperature=0))
        with torch.inference_mode():
            a = reference(input_ids=torch.tensor([text])).logits[0, len(ids) - 1:-1].argmax(-1)
            b = candidate(input_ids=torch.tensor([text])).logits[0, len(ids) - 1:-1].argmax(-1)
        same += int((a == b).sum())
        total += len(a)
    return same / total


def bench_agreement(table_notes: list[str]) -> None:
    from autocomplete import models, starter

    directory = str(starter.model_dir())
    fp32 = models.load(directory, "cpu", "fp32")
    int8 = models.load(directory, "cpu", "int8")
    share = agreement(fp32.model, int8.model, fp32.encode)
    table_notes.append(f"int8 vs fp32 teacher-forced top-1 agreement on SmolLM2-135M "
                       f"({len(AGREEMENT_PROMPTS)} prompts × 32 positions): {share:.1%} (target ≥ 97%)")
    print("  " + table_notes[-1], file=sys.stderr)


def bench_suggest(lm, table: Table, repeat: int) -> None:
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
            lm.model.generate(torch.tensor([ids]), do_sample=True, max_new_tokens=4, min_new_tokens=4,
                              pad_token_id=0)

    table.add("--suggest 5 latency (s)", "5 × generate(do_sample, 4 tokens)", median_time(naive, repeat),
              median_time(ours, repeat), "s")


def bench_ghost(lm, table: Table, repeat: int) -> None:
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
        lm.model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=n, min_new_tokens=n, pad_token_id=0)

    table.add(f"keystroke → ghost text ({n} tokens, {ghost.debounce * 1000:.0f} ms debounce) (s)",
              f"generate() of {n} tokens", median_time(baseline, repeat), median_time(lambda: ghost(text), repeat),
              "s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per figure (the median is kept)")
    args = parser.parse_args()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

    import torch

    from autocomplete import models, starter

    OUT.mkdir(parents=True, exist_ok=True)
    print("preparing the GPT-2-124M-sized model…", file=sys.stderr)
    lm = models.load(str(gpt2_124m(starter.model_dir())), "cpu")
    table = Table()
    bench_decode(lm, table, args.repeat)
    bench_suggest(lm, table, args.repeat)
    bench_ghost(lm, table, args.repeat)

    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    print(f"Machine: {machine}\n")
    print(table.markdown())
    (OUT / "results.json").write_text(json.dumps({"machine": machine, "figures": table.rows}, indent=2))


if __name__ == "__main__":
    main()
