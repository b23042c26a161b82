"""Where autocomplete keeps things: converted models in the user cache, REPL history in the user data dir."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

import platformdirs

# A cache entry unused this long goes: it costs at most a conversion (half a minute) to make again, and a
# converted GGUF is hundreds of MB.
UNUSED_DAYS = 30


def cache_dir() -> Path:
    return Path(os.environ.get("AUTOCOMPLETE_CACHE_DIR") or platformdirs.user_cache_dir("autocomplete"))


def data_dir() -> Path:
    return Path(os.environ.get("AUTOCOMPLETE_DATA_DIR") or platformdirs.user_data_dir("autocomplete"))


def entry(kind: str, identity: tuple, suffix: str = "") -> Path:
    """Where a cache entry of `kind` is kept, named by a hash of everything it depends on (`identity`): any change
    to one of them makes a new entry."""
    import hashlib  # only when a cache entry is looked for

    return cache_dir() / kind / f"{hashlib.sha256(repr(identity).encode()).hexdigest()[:32]}{suffix}"


def weights(directory: Path) -> list[tuple[str, int, int]]:
    """A model directory's weight files as part of a cache entry's identity: each one's name, size and time."""
    return [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(Path(directory).glob("*.safetensors"))]


def touch(entry: Path) -> None:
    """Mark a cache entry used (one syscall, when a cold call reads it), so prune() goes by last use."""
    with contextlib.suppress(OSError):
        os.utime(entry)


def prune(directory: Path, keep: int | None = None, days: float = UNUSED_DAYS) -> None:
    """Remove the entries (files or directories) of a cache directory unused for `days`, and all but the `keep`
    last used. Called only after writing a new entry, never on a read. Safe beside other processes: entries are
    renamed in whole; a file another process has open outlives its removal (POSIX); one removed before another
    process opens it is made again; names starting with "." are writes in progress, removed only by age (what a
    killed writer left)."""
    try:
        with os.scandir(directory) as found:
            entries = []
            for entry in found:
                with contextlib.suppress(OSError):  # gone already: another process pruned it
                    entries.append((entry.stat(follow_symlinks=False).st_mtime, entry))
    except OSError:
        return
    entries.sort(key=lambda pair: pair[0], reverse=True)  # last used first
    old = time.time() - days * 86400
    kept = 0
    for used, entry in entries:
        writing = entry.name.startswith(".")
        kept += not writing
        if used < old or (not writing and keep is not None and kept > keep):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
