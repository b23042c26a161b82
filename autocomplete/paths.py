"""Where autocomplete keeps things: converted models in the user cache, REPL history in the user data dir."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir() -> Path:
    return Path(os.environ.get("AUTOCOMPLETE_CACHE_DIR") or platformdirs.user_cache_dir("autocomplete"))


def data_dir() -> Path:
    return Path(os.environ.get("AUTOCOMPLETE_DATA_DIR") or platformdirs.user_data_dir("autocomplete"))
