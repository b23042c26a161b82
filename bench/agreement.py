"""int8 against fp32 on each engine, teacher-forced, at 1 thread and on every core."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from common import ENGINES, PRECISIONS, load, warm_exports


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
