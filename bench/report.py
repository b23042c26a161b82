"""The benchmark's runs, printed from their data (bench/results/*.json, one file a run, written by bench/run.py).

    python bench/report.py                      # the summary: each figure with a target, per machine, latest run
    python bench/report.py bench/results/F.json # one run's tables, as the run printed them
    python bench/report.py --write docs/speed.md  # the summary between the page's markers, made again
    python bench/report.py --check docs/speed.md  # exit 1 if the page's summary isn't what the data makes

Standard library only: printing needs no model, no torch.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BEGIN = "<!-- summary: python bench/report.py --write docs/speed.md -->"
END = "<!-- end of summary -->"
UNLIKELY = 1e-3  # bench/quality.py's "odd" word: one the model writes less than once in a thousand where it stands


def runs(directory: Path | None = None) -> list[dict]:
    """Every run kept (in bench/results), oldest first, each with its file's name as "file": by date, then by the
    number a later run that day on that machine gets (F.json, F-2.json, …, F-10.json)."""
    found = []
    for path in (directory or RESULTS).glob("*.json"):
        run = json.loads(path.read_text(encoding="utf-8"))
        later = re.search(r"-(\d+)$", path.stem)  # (the thread count, last in a first run's name, ends in "t")
        found.append(({**run, "file": path.name}, int(later.group(1)) if later else 1))
    return [run for run, _ in sorted(found, key=lambda pair: (pair[0]["date"], pair[1], pair[0]["file"]))]


def machine(run: dict) -> str:
    """The machine a run is from, as the summary groups them: its CPU and capabilities, and the threads it ran."""
    found = run["cpu"]
    return f"{found['model']} ({', '.join(found['capabilities']) or 'no AVX2'}), {run['threads']} thread" + \
        "s" * (run["threads"] != 1)


def figures_table(rows: list[dict]) -> str:
    lines = ["| figure | baseline | baseline value | ours | ours ÷ baseline | target |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['figure']} | {r['baseline']} | {r['baseline_value']:.4g} {r['unit']} | "
                     f"{r['ours']:.4g} {r['unit']} | {r['ratio']:.2f} | {r['target']} |")
    return "\n".join(lines)


def quality_row(r: dict) -> str:
    return (f"| {r['typed']} ({r['prefixes']}) | {r['style']} | {'on' if r['healing'] else 'off'} | "
            f"{r['success@1']:.0%} | {r['success@5']:.0%} | {r['mrr']:.2f} | {r['greedy']:.0%} | "
            f"{r['suggest_latency_s']:.2f} s |")


def quality_table(rows: list[dict]) -> str:
    head = ("| last word typed (prefixes) | style | healing | success@1 | success@5 | MRR | greedy one-shot | "
            "--suggest 5, warm (median) |\n|---|---|---|---|---|---|---|---|")
    return "\n".join([head, *map(quality_row, rows)])


def odd_table(rows: list[dict]) -> str:
    head = (f"| sampler | completions | with a word the model gives < {UNLIKELY:g} | typed word completed right | "
            "distinct of 3 a prefix | e.g. |\n|---|---|---|---|---|---|")
    return "\n".join([head, *(f"| {r['settings']} | {r['completions']} | {r['odd']:.1%} | {r['right']:.0%} | "
                                f"{r['distinct']:.2f} | {'; '.join(r['examples'][:3]).replace('|', '/')} |"
                                for r in rows)])


def render(run: dict) -> str:
    """One run's tables and notes, as it printed them."""
    out = [f"{run['title']} ({run['date']})"] if run.get("title") else []
    out.append(f"Machine: {run['machine']}" + (f" (code {run['commit']})" if run.get("commit") else ""))
    if run["figures"]:
        out.append(figures_table(run["figures"]))
    out += [f"Check: {c['check']}: {'yes' if c['passed'] else 'NO'} ({c['detail']})" for c in run["checks"]]
    out += run["notes"]
    out += [f"FAILED, no figures: {failure}" for failure in run["failed"]]
    if run.get("quality"):
        out.append("Query autocomplete on the starter model (SmolLM2-135M), queries typed mid-word "
                   "(bench/queries.txt: 3 letters of the last word or more; bench/queries_short.txt: 1-2; "
                   "bench/names.txt: names typed 1-6 letters in):")
        out.append(quality_table(run["quality"]))
    if run.get("odd_words"):
        out.append(f"Default one-shot completions on the starter, every prefix of the everyday sets, "
                   f"{run['odd_words'][0].get('seeds', 3)} seeds each: how many hold a word the model itself finds "
                   "unlikely where it stands:")
        out.append(odd_table(run["odd_words"]))
    return "\n\n".join(out)


def summary(kept: list[dict]) -> str:
    """Each figure with a target, from the latest run on each machine (and thread count) that measured it; then the
    search box's quality (query style, healing on) the same way. Each row names its run's file."""
    latest: dict[tuple[str, str], tuple[dict, dict]] = {}
    for run in kept:  # oldest first: a later run's figure replaces an earlier one's
        for row in run["figures"]:
            if row["target"]:
                latest[row["figure"], machine(run)] = (row, run)
    lines = ["| figure | machine | ours | baseline | ours ÷ baseline | target | run |",
             "|---|---|---|---|---|---|---|"]
    for (figure, where), (row, run) in sorted(latest.items()):
        lines.append(f"| {figure} | {where} | {row['ours']:.4g} {row['unit']} | {row['baseline']}: "
                     f"{row['baseline_value']:.4g} {row['unit']} | {row['ratio']:.2f} | {row['target']} | "
                     f"{run['file']} |")
    quality: dict[tuple[str, str], tuple[dict, dict]] = {}
    for run in kept:
        for row in run.get("quality") or []:
            if row["style"] == "query" and row["healing"]:
                quality[row["typed"], machine(run)] = (row, run)
    if quality:
        lines += ["", "| query style, healing on: last word typed (prefixes) | machine | success@1 | success@5 | MRR | "
                      "greedy one-shot | run |", "|---|---|---|---|---|---|---|"]
        for (typed, where), (row, run) in sorted(quality.items()):
            lines.append(f"| {typed} ({row['prefixes']}) | {where} | {row['success@1']:.0%} | {row['success@5']:.0%} "
                         f"| {row['mrr']:.2f} | {row['greedy']:.0%} | {run['file']} |")
    return "\n".join(lines)


def page_with_summary(page: str, table: str) -> str:
    """The page with what lies between its markers made again (ValueError when it has no markers)."""
    if BEGIN not in page or END not in page:
        raise ValueError(f"the page has no summary markers ({BEGIN} … {END})")
    start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
    return page[:start] + "\n\n" + table + "\n\n" + page[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="runs to print in full (default: the summary)")
    parser.add_argument("--write", type=Path, metavar="PAGE", help="write the summary into PAGE, between its markers")
    parser.add_argument("--check", type=Path, metavar="PAGE", help="exit 1 if PAGE's summary isn't the data's")
    args = parser.parse_args(argv)
    if args.files:
        print("\n\n".join(render(json.loads(path.read_text(encoding="utf-8"))) for path in args.files))
        return 0
    table = summary(runs())
    for page in filter(None, (args.write, args.check)):
        text = page.read_text(encoding="utf-8")
        try:
            made = page_with_summary(text, table)
        except ValueError as error:
            print(f"{page}: {error}", file=sys.stderr)
            return 1
        if args.write:
            page.write_text(made, encoding="utf-8")
        elif made != text:
            print(f"{page}: its benchmark summary is not what bench/results makes; run python bench/report.py "
                  f"--write {page}", file=sys.stderr)
            return 1
    if not (args.write or args.check):
        print(table)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `| head`: what was read was all that was wanted
        sys.stdout = None
        sys.exit(0)
