"""Pruning the cache: what goes (unused for long, beyond the newest few) and what stays (writes in progress)."""

from __future__ import annotations

import os
import time

from autocomplete import paths


def aged(path, days: float):
    stamp = time.time() - days * 86400
    os.utime(path, (stamp, stamp))
    return path


def test_prune_removes_what_was_unused_for_long_and_beyond_the_newest(tmp_path):
    for i in range(5):
        (tmp_path / f"file{i}").write_bytes(b"x")
        aged(tmp_path / f"file{i}", i)  # file0 the last used
    (tmp_path / "old-dir").mkdir()
    (tmp_path / "old-dir" / "weights").write_bytes(b"x")
    aged(tmp_path / "old-dir", paths.UNUSED_DAYS + 1)
    (tmp_path / ".file5.tmp").write_bytes(b"")  # being written by another process: not counted, kept
    (tmp_path / ".killed.tmp").write_bytes(b"")
    aged(tmp_path / ".killed.tmp", paths.UNUSED_DAYS + 1)  # what a killed writer left
    paths.prune(tmp_path, keep=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".file5.tmp", "file0", "file1", "file2"]
    paths.prune(tmp_path, days=1.5)  # no count: by age only
    assert sorted(p.name for p in tmp_path.iterdir()) == [".file5.tmp", "file0", "file1"]


def test_touch_marks_an_entry_used(tmp_path):
    entry = tmp_path / "entry"
    entry.write_bytes(b"")
    aged(entry, paths.UNUSED_DAYS + 1)
    paths.touch(entry)
    paths.prune(tmp_path)
    assert entry.exists()
    paths.touch(tmp_path / "gone")  # best effort: no error
    paths.prune(tmp_path / "missing")


def test_a_cache_entry_is_named_by_everything_it_depends_on(tmp_path, monkeypatch):
    from autocomplete import paths

    monkeypatch.setenv("AUTOCOMPLETE_CACHE_DIR", str(tmp_path))
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"x")
    first = paths.entry("frames", ("format-1", str(model), paths.weights(model)), ".bin")
    assert first.parent == tmp_path / "frames" and first.suffix == ".bin"
    assert paths.entry("frames", ("format-1", str(model), paths.weights(model)), ".bin") == first
    assert paths.entry("frames", ("format-2", str(model), paths.weights(model)), ".bin") != first
    (model / "model.safetensors").write_bytes(b"xy")  # the weights changed: a new entry
    assert paths.entry("frames", ("format-1", str(model), paths.weights(model)), ".bin") != first
