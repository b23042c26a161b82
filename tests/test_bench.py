"""The benchmark's results as data (bench/results, written by bench/common.save, printed by bench/report.py): what is
kept is what is printed, and the summary in docs/speed.md is what the data makes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import common  # noqa: E402
import peers  # noqa: E402
import report  # noqa: E402


def a_run(date: str = "2026-12-07", ratio: float = 0.95, **over) -> dict:
    run = {"date": date, "commit": "abc1234", "command": "python bench/run.py --only peers",
           "machine": "AMD EPYC (x86_64; AVX2, AVX-512 VNNI), 2 cores, 1 threads",
           "cpu": {"model": "AMD EPYC", "capabilities": ["AVX2", "AVX-512 VNNI"]}, "threads": 1,
           "figures": [{"figure": "decode, greedy, 128 tokens, the starter, 1 thread, onnx int8",
                        "baseline": "llama.cpp Q8_0 (llama-bench 0.5.0)", "baseline_value": 100.0,
                        "ours": 100.0 * ratio, "unit": "tok/s", "ratio": ratio, "target": "≥ 1.0×"},
                       {"figure": "import cost", "baseline": "python -c pass", "baseline_value": 0.02, "ours": 0.05,
                        "unit": "s", "ratio": 2.5, "target": ""}],
           "checks": [{"check": "no torch", "passed": True, "detail": "0 torch modules"}], "notes": ["a note"],
           "failed": [], "quality": None, "odd_words": None}
    return {**run, **over}


def test_a_run_is_kept_under_its_date_machine_and_threads_and_never_overwritten(tmp_path):
    first, second = common.save(a_run(), tmp_path), common.save(a_run(), tmp_path)
    assert first.name == "2026-12-07-amd-epyc-avx-512-vnni-1t.json" and second.name == first.stem + "-2.json"
    assert json.loads(first.read_text(encoding="utf-8")) == a_run()


def test_a_run_prints_from_its_data_alone(tmp_path):
    common.save(a_run(), tmp_path)
    (kept,) = report.runs(tmp_path)
    printed = report.render(kept)
    assert "Machine: AMD EPYC (x86_64; AVX2, AVX-512 VNNI), 2 cores, 1 threads (code abc1234)" in printed
    assert ("| decode, greedy, 128 tokens, the starter, 1 thread, onnx int8 | llama.cpp Q8_0 (llama-bench 0.5.0) | "
            "100 tok/s | 95 tok/s | 0.95 | ≥ 1.0× |") in printed
    assert "Check: no torch: yes (0 torch modules)" in printed and "a note" in printed


def test_the_summary_takes_each_machines_latest_figure_with_a_target(tmp_path):
    common.save(a_run("2026-12-01", 0.80), tmp_path)
    common.save(a_run("2026-12-07", 0.95), tmp_path)
    common.save(a_run("2026-12-03", 0.70, cpu={"model": "Intel Xeon", "capabilities": ["AMX"]}), tmp_path)
    rows = [line for line in report.summary(report.runs(tmp_path)).splitlines() if line.startswith("| decode")]
    assert len(rows) == 2  # one a machine; the figure with no target isn't summarised
    common.save(a_run("2026-12-08", 0.99, threads=2), tmp_path)  # the same machine on 2 threads: a row of its own
    assert sum(line.startswith("| decode") for line in report.summary(report.runs(tmp_path)).splitlines()) == 3
    assert " 0.95 " in rows[0] and "2026-12-07-amd-epyc" in rows[0] and " 0.70 " in rows[1] and "AMX" in rows[1]
    assert not any("import cost" in line for line in report.summary(report.runs(tmp_path)).splitlines())


def test_the_pages_summary_is_what_the_kept_runs_make(tmp_path, capsys):
    assert report.main(["--check", str(ROOT / "docs" / "speed.md")]) == 0
    page = tmp_path / "page.md"
    page.write_text(f"before\n{report.BEGIN}\n| stale |\n{report.END}\nafter\n", encoding="utf-8")
    assert report.main(["--check", str(page)]) == 1 and "not what bench/results makes" in capsys.readouterr().err
    assert report.main(["--write", str(page)]) == 0 and report.main(["--check", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("before\n") and text.endswith("after\n") and "| stale |" not in text


def test_runs_on_one_day_are_in_the_order_they_were_kept(tmp_path):
    for ratio in (0.1, 0.2, *(0.3,) * 8, 0.9):  # F.json, F-2.json, …, F-11.json: "-10" sorts before "-2" by name
        common.save(a_run("2026-12-07", ratio), tmp_path)
    common.save(a_run("2026-12-06", 0.05), tmp_path)
    kept = report.runs(tmp_path)
    assert [run["figures"][0]["ratio"] for run in kept][:3] == [0.05, 0.1, 0.2] and kept[-1]["file"].endswith("-11.json")
    assert " 0.90 " in next(line for line in report.summary(kept).splitlines() if line.startswith("| decode"))


def test_a_peer_not_installed_is_shown_from_the_newest_run_that_measured_it(tmp_path, monkeypatch):
    common.save(a_run("2026-12-01", 0.80), tmp_path)
    common.save(a_run("2026-12-05", 0.90), tmp_path)
    common.save(a_run("2026-12-07", figures=[]), tmp_path)  # a later run without the peer
    keystroke = {"figure": "per keystroke, 36 queries typed letter by letter (mean, s)",  # compared with llama-bench,
                 "baseline": "llama.cpp Q8_0 (llama-bench 0.5.0)'s time per decoded token (tg128)",  # not its figure
                 "baseline_value": 0.009, "ours": 0.064, "unit": "s", "ratio": 7.1, "target": "≤ 5×"}
    common.save(a_run("2026-12-07", figures=[keystroke]), tmp_path)
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    notes: list[str] = []
    peers.show_last(peers.LlamaBench, notes)
    peers.show_last(peers.GenAI, notes)
    assert notes[0].startswith("llama.cpp Q8_0 (llama-bench 0.5.0), not installed: not measured in this run, last "
                               "measured 2026-12-05")
    assert notes[0].endswith("decode, greedy, 128 tokens, the starter, 1 thread: 100 tok/s")
    assert notes[1] == "ORT-GenAI: not installed, not measured in this run, and never measured before"


@pytest.mark.parametrize("path", sorted((ROOT / "bench" / "results").glob("*.json")), ids=lambda p: p.name)
def test_every_kept_run_is_named_as_save_names_it_and_prints(path):
    run = json.loads(path.read_text(encoding="utf-8"))
    assert path.stem == common.run_name(run) or path.stem.rsplit("-", 1)[0] == common.run_name(run)
    assert "| ours ÷ baseline |" in report.render(run) or run.get("quality")
