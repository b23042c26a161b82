"""A GGUF file (llama.cpp's format) converted once into a safetensors directory in the cache, by transformers."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from autocomplete import paths, terminal
from autocomplete.errors import UserError, first_line

_GGUF_SOURCE = "gguf-source"  # in a conversion: the GGUF file's path, which a newer conversion of it replaces


def convert(path: Path, out: Path | None = None) -> Path:
    """Dequantize a GGUF file once into a safetensors directory in the cache, so later loads take ~1 s, not ~25 s.

    The cache keeps one conversion per GGUF path (a new one, of the file changed, replaces the older) and none
    unused for paths.UNUSED_DAYS: each is hundreds of MB. Pruned only after a conversion, never on a load."""
    path = path.resolve()
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise UserError(f"{path} is not a GGUF file")
    cached = out is None
    if cached:
        stat = path.stat()
        key = hashlib.sha256(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
        out = paths.cache_dir() / "gguf" / f"{path.stem}-{key}"
    if (out / "config.json").is_file():
        why = damaged(out)
        if why is None:
            if cached:
                paths.touch(out)  # used: kept by prune()
            return out
        terminal.notice(f"The conversion in {out} is damaged ({why}): converting {path.name} again.")
        shutil.rmtree(out, ignore_errors=True)

    out.parent.mkdir(parents=True, exist_ok=True)
    # Named with a leading "." while written, so a prune by another process leaves it be.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        with terminal.status(f"Converting {path.name} to safetensors (once; about half a minute)…", plain=True):
            transformers = quiet_transformers()
            # The GGUF alone, in a folder of its own: tokenizer or config files lying beside it must not be read.
            alone = tmp / "gguf"
            alone.mkdir()
            (alone / path.name).symlink_to(path)
            try:
                with _no_gguf_progress_bar():
                    tokenizer = transformers.AutoTokenizer.from_pretrained(alone, gguf_file=path.name,
                                                                           trust_remote_code=False)
                    model = transformers.AutoModelForCausalLM.from_pretrained(alone, gguf_file=path.name,
                                                                              trust_remote_code=False)
            except Exception as error:
                raise UserError(f"could not read GGUF file {path}: {first_line(error) or type(error).__name__}")
            # transformers refuses save_pretrained on a GGUF-loaded model while these are set; the weights
            # are plain float32 by now.
            model.hf_quantizer = None
            del model.config.quantization_config
            shutil.rmtree(alone)
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / _GGUF_SOURCE).write_text(str(path))
        _synced(tmp)
        try:
            tmp.rename(out)
        except OSError:  # another process finished the same conversion first
            if not (out / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if cached:
        for other in out.parent.iterdir():  # older conversions of this path (in progress ones start with ".")
            if other != out and not other.name.startswith(".") and _gguf_source(other) == str(path):
                shutil.rmtree(other, ignore_errors=True)
        paths.prune(out.parent)
    return out


def damaged(directory: Path) -> str | None:
    """Why a conversion's weights can't be loaded (a write cut short: a full disk, a crash), or None: each
    safetensors file's header reads, and the data it describes is all there. Reads the headers only."""
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return "no weights"
    for file in files:
        try:
            with file.open("rb") as f:
                size = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(size)) if 2 <= size <= 100 << 20 else None
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
            if 8 + size + int(end) > file.stat().st_size:
                return f"{file.name} is cut short"
        except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
            return f"{file.name} has no readable header"
    return None


def _synced(directory: Path) -> None:
    """Every file written under `directory` on disk before it is renamed into place (else a crash may leave a
    complete-looking directory of empty files)."""
    for file in directory.rglob("*"):
        if file.is_file() and not file.is_symlink():
            with file.open("rb") as f:
                os.fsync(f.fileno())


def _gguf_source(conversion: Path) -> str | None:
    try:
        return (conversion / _GGUF_SOURCE).read_text()
    except OSError:  # a conversion made before the path was recorded, or not a conversion: left to prune()
        return None


@contextlib.contextmanager
def _no_gguf_progress_bar():
    """transformers draws a tqdm bar per GGUF tensor list whatever its progress-bar setting (40-odd lines in a
    scrollback, fighting our spinner): our spinner says what is happening instead."""
    gguf = sys.modules.get("transformers.modeling_gguf_pytorch_utils")
    if gguf is None:
        import importlib

        gguf = importlib.import_module("transformers.modeling_gguf_pytorch_utils")
    bar = getattr(gguf, "tqdm", None)
    if bar is None:  # another transformers: nothing to quieten here
        yield
        return
    gguf.tqdm = lambda items, *args, **kwargs: items
    try:
        yield
    finally:
        gguf.tqdm = bar


def quiet_transformers():
    """Import transformers quietly: its warnings and progress bars are not for our users (here and in
    autocomplete.engine.models' loading of what our compact forwards don't run)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import transformers
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    return transformers
