"""The Hugging Face Hub through its standard cache: look up, check reachability quickly, download."""

from __future__ import annotations

import threading
from pathlib import Path

from autocomplete import terminal

# Only what loading needs; weights as safetensors only (never pickled .bin files).
_ALLOW = ["*.json", "*.safetensors", "merges.txt", "vocab.txt", "*.model", "*.tiktoken"]


def cached_snapshot(repo_id: str) -> Path | None:
    """The local snapshot of repo_id in the HF cache (HF_HOME honoured), without touching the network; None unless
    it holds what loading needs (a config and safetensors weights): a partly cached model is downloaded again."""
    path = _snapshot(repo_id)
    return path if path is not None and not missing(path) else None


def partly_cached(repo_id: str) -> str | None:
    """What a snapshot of repo_id in the cache lacks ("safetensors weights", say), or None if it's whole or absent."""
    path = _snapshot(repo_id)
    return missing(path) if path is not None else None


def missing(path: Path) -> str | None:
    if not (path / "config.json").is_file():
        return "config.json"
    if not any(path.glob("*.safetensors")):
        return "safetensors weights"
    return None


def _snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub answers within `timeout` seconds.

    huggingface_hub retries for ~23 s before giving up on an unreachable Hub, and a DNS lookup can hang past
    any socket timeout, so the request runs in a thread we stop waiting for.
    """
    if offline():
        return False
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    result: list[bool] = []
    done = threading.Event()

    def ask():
        try:
            result.append(get_session().head(constants.ENDPOINT, timeout=timeout).status_code < 500)
        except Exception:
            result.append(False)
        finally:
            done.set()

    threading.Thread(target=ask, daemon=True).start()
    done.wait(timeout)
    return bool(result and result[0])


def download(repo_id: str) -> Path:
    """Download repo_id into the HF cache with the Hub's own progress bars (on stderr; the spinner steps aside)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import enable_progress_bars

    enable_progress_bars()
    with terminal.paused():
        return Path(snapshot_download(repo_id, allow_patterns=_ALLOW))
