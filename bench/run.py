"""The benchmark: every figure measured in one run as a ratio against a baseline measured in the same run.

    python bench/run.py                    # every part; --only decode peers quality … for some
    python bench/report.py                 # the summary of every run kept; a run's tables: report.py FILE

A run is kept as data, one JSON file under bench/results/ (its date, the machine and its CPU's capabilities, the
thread count, the commit, each figure with its baseline), and printed from that data by bench/report.py: measuring
lives in the parts (decoding, startup, serving, agreement, suggestions, peers, quality), printing in report.py.

The model has GPT-2-124M's architecture with random weights (same cost as the real one; built once and cached).
GPT-2's own tokenizer can't be had offline, so it uses the pip-shipped SmolLM2's (49,152 tokens, close to
GPT-2's 50,257); the starter model is fetched the way autocomplete fetches it, if it isn't cached yet.
The peers (bench/peers.py: llama.cpp's llama-bench, ONNX Runtime GenAI) are measured when installed; a peer not
installed has its last figures shown instead (from the newest run kept that measured it), dated and labelled as
such.

Our model runs on two engines (autocomplete.engine.engine): onnx (ONNX Runtime, the CPU default) and torch. Where a
part measures our model it has a row for each. A model's first export for ONNX Runtime (~30-50 s, cached under
AUTOCOMPLETE_CACHE_DIR) is made before anything is timed (warm_exports). Every figure, ours on either engine and
the baselines' (but the peers', at 1 and at 2 threads), runs on one thread count: AUTOCOMPLETE_THREADS if set, else
autocomplete's idle-core rule at the start of the run (set in AUTOCOMPLETE_THREADS for the processes it starts).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402
from agreement import bench_agreement  # noqa: E402
from common import (ENGINES, OUT, RESULTS, Table, commit, cpu, gpt2_124m, load, machine_line, save,  # noqa: E402
                    threads, warm_exports)
from decoding import bench_decode  # noqa: E402
from peers import bench_peers  # noqa: E402
from serving import bench_api, bench_api_client, bench_warm, bench_web  # noqa: E402
from startup import bench_gguf, bench_memory, bench_start_up  # noqa: E402
from suggestions import (bench_ghost, bench_keystrokes, bench_list, bench_suggest,  # noqa: E402
                         bench_suggestion_lists)


PARTS = ["decode", "peers", "agreement", "start-up", "warm", "api-client", "api", "suggest", "keystrokes", "web",
         "gguf", "memory", "quality", "odd-words"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per figure (the median is kept)")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=PARTS, metavar="PART",
                        help=f"measure only these parts: {', '.join(PARTS)}")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the run's JSON file goes (bench/results)")
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
        """One part, if asked for: a part that fails is reported (stderr, the run's record), the rest run."""
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
        from autocomplete.settings import Params

        warm_exports(starter.model_dir())
        lm = models.load(str(starter.model_dir()), "cpu")
        # the defaults, and the top-p they had before issue 19 (the same T and top-k)
        return [query_quality.odd_words(lm, params) for params in (Params(), Params(top_p=0.95))]

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

    run = {"date": datetime.date.today().isoformat(), "commit": commit(), "command": " ".join(["python bench/run.py",
                                                                                              *sys.argv[1:]]),
           "machine": machine_line(), "cpu": cpu(), "threads": threads(), "figures": table.rows, "checks": checks,
           "notes": notes, "failed": failed, "quality": quality, "odd_words": odd}
    kept = save(run, args.out)
    print(report.render(run))
    print(f"\n(kept in {kept.relative_to(Path.cwd()) if kept.is_relative_to(Path.cwd()) else kept})", file=sys.stderr)


if __name__ == "__main__":
    main()
