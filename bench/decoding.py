"""Decoding: our loop on each engine and precision against transformers' generate() on the same weights."""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from common import ENGINES, PRECISIONS, Clock, Table, in_turns, load, warm_exports


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


def generate_per_token(directory: Path, ids: list[int]) -> Callable[[], float]:
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
