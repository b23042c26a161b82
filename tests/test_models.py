"""Model loading: which implementation runs what, and which precisions it accepts where."""

from __future__ import annotations

import sys

import torch

from autocomplete import models


def test_gpt2_runs_on_the_compact_implementation_without_transformers_modeling(tiny_dir, env):
    import subprocess

    code = ("import sys; from autocomplete import models\n"
            f"lm = models.load({str(tiny_dir)!r}, 'cpu')\n"
            "assert type(lm.model).__module__ == 'autocomplete.gpt2'\n"
            "assert not [m for m in sys.modules if m.startswith('transformers.models')], 'modeling imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env)
    assert result.returncode == 0, result.stderr


def test_a_greedy_gpt2_completion_never_imports_transformers(tiny_dir, env):
    """The cold-start path of a shell call: transformers costs ~3 s to import with its modeling code."""
    import subprocess

    code = ("import sys; from autocomplete.cli import run\n"
            f"assert run(['-m', {str(tiny_dir)!r}, '-t', '0', 'san']) == 0\n"
            "assert run(['-m', " + repr(str(tiny_dir)) + ", '-t', '0.8', '-k', '0', '-p', '1', 'san']) == 0\n"
            "assert 'transformers' not in sys.modules, 'transformers imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith("san francisco weather is good in april?\nsan")


def test_other_architectures_use_transformers(smollm2_cache):
    lm = models.load(str(smollm2_cache / "models" / "smollm2-135m"), "cpu")
    assert type(lm.model).__module__.startswith("transformers.models.llama")
    assert lm.context_length == 8192 and lm.eos_ids


def test_int8_is_cpu_only(cli, tiny_dir):
    if not torch.cuda.is_available():
        result = cli("-m", str(tiny_dir), "--precision", "int8", "--device", "cpu", "-t", "0", "san")
        assert result.returncode == 0 and result.stdout.decode() == "san francisco weather is good in april?\n"
