"""Model loading: which implementation runs what, and which precisions it accepts where."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from autocomplete.engine import models
from autocomplete.text.complete import complete
from autocomplete.settings import Params, Settings
from ptyrun import PtySession


def test_gpt2_runs_on_the_compact_implementation_without_transformers_modeling(tiny_dir, env):
    import subprocess

    code = ("import sys; from autocomplete.engine import models\n"
            f"lm = models.load({str(tiny_dir)!r}, 'cpu', engine='torch')\n"
            "assert type(lm.model).__module__ == 'autocomplete.engine.gpt2'\n"
            "assert not [m for m in sys.modules if m.startswith('transformers.models')], 'modeling imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env)
    assert result.returncode == 0, result.stderr


def run_without_transformers(tiny_dir, env, *argvs: list[str]):
    """Run the CLI in a fresh interpreter on each argv; fails if any of it imported transformers."""
    import subprocess

    model = ["-m", str(tiny_dir)]
    code = ("import sys; from autocomplete.ui.cli import run\n"
            + "".join(f"assert run({model + argv!r}) == 0\n" for argv in argvs)
            + "assert 'transformers' not in sys.modules, 'transformers imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


def test_a_greedy_gpt2_completion_never_imports_transformers(tiny_dir, env):
    """The cold-start path of a shell call: transformers costs ~3 s to import with its modeling code."""
    out = run_without_transformers(tiny_dir, env, ["-t", "0", "san"], ["-t", "0.8", "-k", "0", "-p", "1", "san"])
    assert out.startswith("san francisco weather is good in april?\nsan")
    # The default style, a query: its frame computed and kept on disk, then loaded from there.
    for _ in range(2):
        run_without_transformers(tiny_dir, {**env, "AUTOCOMPLETE_STYLE": "auto"}, ["-t", "0", "san fr"])
    assert len(list((Path(env["AUTOCOMPLETE_CACHE_DIR"]) / "frames").iterdir())) == 1


def test_other_architectures_use_transformers(smollm2_cache, tmp_path):
    """The starter's Llama runs on our compact forward; a model that forward doesn't cover (here a Qwen2, with
    the starter's tokenizer) loads through transformers' modeling and completes all the same."""
    import shutil

    from transformers import Qwen2Config, Qwen2ForCausalLM

    starter = smollm2_cache / "models" / "smollm2-135m"
    assert type(models.load(str(starter), "cpu", engine="torch").model).__module__ == "autocomplete.engine.llama"
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                         bos_token_id=1, eos_token_id=2)
    Qwen2ForCausalLM(config).save_pretrained(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(starter / name, tmp_path / name)
    lm = models.load(str(tmp_path), "cpu")  # engine auto: ONNX Runtime exports GPT-2 and Llama only
    assert lm.engine.name == "torch" and type(lm.model).__module__.startswith("transformers.models.qwen2")
    assert lm.context_length == 256 and lm.eos_ids == {2}
    pieces = []
    done = complete(lm, "stock mar", Params(temperature=0, max_tokens=4, stop="none"), pieces.append)
    assert "".join(pieces) == done.completion and lm.decode(done.tokens).lower().startswith(" mar")
    from autocomplete.text.suggest import suggest

    found = suggest(lm, "stock mar", Params(style="query"), n=3, words=2)  # transformers' cache, recomputed rows
    assert found and all(lm.decode(s.tokens).lower().startswith(" mar") for s in found)


def test_int8_is_cpu_only(cli, tiny_dir):
    if not torch.cuda.is_available():
        result = cli("-m", str(tiny_dir), "--precision", "int8", "--device", "cpu", "-t", "0", "san")
        assert result.returncode == 0 and result.stdout.decode() == "san francisco weather is good in april?\n"


def test_precision_auto_is_int8_on_onnx_and_fp32_on_torch(tiny_dir, cli):
    """--precision auto (the default): int8 where it is as faithful as llama.cpp's Q8_0 (ONNX Runtime's blocks),
    fp32 on torch; a precision asked for is what runs."""
    for engine, expected in (("onnx", "int8"), ("torch", "fp32")):
        assert models.resolved_precision("auto", engine) == expected
        assert [models.resolved_precision(p, engine) for p in ("fp32", "int8")] == ["fp32", "int8"]
        lm = models.load(str(tiny_dir), "cpu", engine=engine)
        assert lm.engine.name == engine and lm.engine.precision == expected
    done = cli("-m", str(tiny_dir), "-t", "0", "san")  # the default: int8 on onnx, still the memorised phrase
    assert done.returncode == 0 and done.stdout.decode() == "san francisco weather is good in april?\n"


def test_int8_with_device_auto_runs_on_the_cpu_even_with_a_gpu(tiny_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine
    lm = models.load(str(tiny_dir), "auto", "int8")
    assert lm.device == "cpu"
    models.unload(lm)


def test_switching_models_in_the_repl_lets_the_previous_one_go(tiny_dir, smollm2_cache, tmp_path):
    import gc
    import weakref

    from autocomplete.ui.repl import Repl

    repl = Repl(Settings(style="text", model=str(tiny_dir)))  # device auto: not the fixture's
    repl._load()
    first = weakref.ref(repl.lm.engine)
    repl.command(f"/model {smollm2_cache / 'models' / 'smollm2-135m'}")
    assert repl.lm.name.endswith("smollm2-135m")
    gc.collect()
    assert first() is None  # nothing holds the tiny model any more


@pytest.mark.parametrize("engine, runtime", [("onnx", "onnxruntime"), ("torch", "torch")])
def test_the_spinner_is_up_before_the_runtime_is_imported(env, tiny_dir, engine, runtime):
    """A cold call spends its time importing the runtime (seconds for torch): the spinner must already be on the
    terminal by then."""
    script = (
        "import sys\n"
        "from autocomplete import terminal\nfrom autocomplete.engine import models\n"
        "seen = []\n"
        "class Watch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {runtime!r} and not seen:\n"
        "            seen.append(terminal._spinner is not None)\n"
        "sys.meta_path.insert(0, Watch())\n"
        f"models.load({str(tiny_dir)!r}, 'cpu', engine={engine!r})\n"
        "print('spinner before the runtime:', seen)\n"
    )
    session = PtySession([sys.executable, "-c", script], {**env, "TERM": "xterm"})
    try:
        session.expect("spinner before the runtime: [True]", timeout=60)
        assert session.wait() == 0
    finally:
        session.close()


@pytest.mark.parametrize("value", ["²", "0", "1.5", "two"])
def test_a_bad_thread_count_is_one_usage_error(cli, tiny_dir, value):
    result = cli("-m", str(tiny_dir), "-t", "0", "san", extra_env={"AUTOCOMPLETE_THREADS": value})
    err = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" not in err and result.stdout == b""
    assert err.strip().splitlines() == [f"autocomplete: AUTOCOMPLETE_THREADS must be a whole number of threads, "
                                        f"1 or more, not {value!r}"]


def test_a_good_thread_count_is_used(cli, tiny_dir, monkeypatch):
    result = cli("-m", str(tiny_dir), "-t", "0", "san", extra_env={"AUTOCOMPLETE_THREADS": " 1 "})
    assert result.returncode == 0 and result.stdout.decode() == "san francisco weather is good in april?\n"
    before = torch.get_num_threads()
    monkeypatch.setenv("AUTOCOMPLETE_THREADS", "1")
    try:
        models.choose_threads()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
