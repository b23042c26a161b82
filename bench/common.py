"""What the benchmark's parts share: where results go, runs taking turns, the table of ratios, the machine line,
the one thread count, loading our model, the GPT-2-sized model, timing a fresh process."""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


OUT = ROOT / "bench" / "out"  # models, GGUFs and exports the runs make (not kept)
RESULTS = ROOT / "bench" / "results"  # one JSON file a run (kept): bench/report.py prints them


T = TypeVar("T")


def in_turns(runs: dict[str, Callable[[], T]], repeat: int) -> dict[str, list[T]]:
    """What each run returns, `repeat` times: the runs take turns, round after round, so a slow spell of a shared
    machine falls on ours and the baselines alike. A first round warms up (allocation, lazy initialisation, the
    file cache) and is dropped."""
    results: dict[str, list[T]] = {name: [] for name in runs}
    for round_ in range(repeat + 1):
        for name, run in runs.items():
            result = run()
            if round_:
                results[name].append(result)
    return results


def elapsed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def median_times(runs: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """The median wall time of each run, the runs taking turns."""
    results = in_turns({name: functools.partial(elapsed, run) for name, run in runs.items()}, repeat)
    return {name: statistics.median(values) for name, values in results.items()}


ENGINES = ("onnx", "torch")  # the default engine on the CPU first


PRECISIONS = ("fp32", "int8")


def threads() -> int:
    """The run's one thread count (main() puts it in AUTOCOMPLETE_THREADS): ORT's sessions, torch's and the peers'."""
    from autocomplete.engine.engine import idle_cores

    return idle_cores()


def load(directory: Path, precision: str, engine: str):
    """Our model on the CPU, on `engine` at `precision` (autocomplete.engine.models.LoadedModel)."""
    from autocomplete.engine import models

    lm = models.load(str(directory), "cpu", precision, engine)
    assert lm.engine.name == engine and lm.engine.precision == precision, (lm.engine.name, lm.engine.precision)
    return lm


def warm_exports(directory: Path, precisions: tuple[str, ...] = PRECISIONS) -> None:
    """The model exported for ONNX Runtime at these precisions (the first time a few seconds, then cached under
    AUTOCOMPLETE_CACHE_DIR), before anything is timed: the runs, in this process or in those it starts, find it
    made."""
    from autocomplete.engine import onnx_engine

    for precision in precisions:
        start = time.perf_counter()
        onnx_engine.exported(directory, precision, directory.name)
        if time.perf_counter() - start > 2:
            print(f"  exported {directory.name} ({precision}) for ONNX Runtime in {time.perf_counter() - start:.0f} s "
                  f"(not timed)", file=sys.stderr)


CAPABILITIES = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
                "amx_int8": "AMX"}  # /proc/cpuinfo's flag -> what the int8 kernels can use


def cpu() -> dict:
    """The CPU model and what the int8 kernels can use on it (from /proc/cpuinfo on Linux)."""
    name, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():  # the first core's lines
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name" and not name:
                name = value
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return {"model": name or platform.processor() or "unknown CPU",
            "capabilities": [shown for flag, shown in CAPABILITIES.items() if flag in flags]}


def machine_line(with_load: bool = True) -> str:
    import onnxruntime
    import torch

    found = cpu()
    capable = ", ".join(found["capabilities"]) or "none of " + "/".join(CAPABILITIES.values())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    line = (f"{found['model']} ({platform.machine()}; {capable}), {cores} cores, {threads()} threads, "
            f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}")
    return line + (f", load average {os.getloadavg()[0]:.2f} at the end" if with_load else "")


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


class _quiet_stderr:
    """fd 2 to /dev/null while in the block: llama.cpp writes its logs there from C."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)


def peak_rss_mb(args: list[str], env: dict | None = None, stdin: bytes | None = None) -> float:
    """Peak resident memory of a fresh process running `args` (stdin: what is piped in; nothing: /dev/null), in MB."""
    import subprocess

    probe = ("import resource, subprocess, sys; data = sys.stdin.buffer.read() if sys.argv[1] == 'stdin' else None; "
             "subprocess.run(sys.argv[2:], input=data, stdin=None if data is not None else subprocess.DEVNULL, "
             "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, "stdin" if stdin is not None else "-", *args], input=stdin,
                         capture_output=True, env=env, check=True).stdout
    return int(out) / 1024


def autocomplete_command() -> list[str]:
    return [sys.executable, "-m", "autocomplete"]


def subprocess_output(args: list[str], stdin: bytes | None = None) -> tuple[str, str]:
    """A fresh process's stdout and stderr (its stderr said if it fails)."""
    import subprocess

    done = subprocess.run(args, input=stdin, stdin=subprocess.DEVNULL if stdin is None else None,
                          capture_output=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    return done.stdout.decode(), done.stderr.decode()


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


def commit() -> str | None:
    """The code measured: the checkout's commit, with "+" when it has changes not committed."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=RESULTS.parent).stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    return (head + ("+" if git("status", "--porcelain", "--untracked-files=no") else "")) or None


def run_name(run: dict) -> str:
    """A run's file name without its suffix: its date, its CPU and last capability, its thread count."""
    found = run["cpu"]
    machine = re.sub(r"[^a-z0-9]+", "-", " ".join([found["model"], *found["capabilities"][-1:]]).lower()).strip("-")
    return f"{run['date']}-{machine}-{run['threads']}t"


def save(run: dict, directory: Path) -> Path:
    """The run as one JSON file named by run_name (never overwriting one: a second run that day on that machine
    gets -2)."""
    directory.mkdir(parents=True, exist_ok=True)
    path, n = directory / f"{run_name(run)}.json", 1
    while path.exists():
        n += 1
        path = directory / f"{run_name(run)}-{n}.json"
    path.write_text(json.dumps(run, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
