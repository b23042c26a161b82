"""Shell completion (Typer's --show-completion / --install-completion): a real bash sources the script and asks it,
as it does when the user presses Tab."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import console_script

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="no bash here")


def tab(env: dict, script: str, words: list[str]) -> list[str]:
    """What bash completes the last of `words` with (an empty last word: a Tab after a space)."""
    line = " ".join(f"'{word}'" for word in words)
    program = (f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}\n"
               "_autocomplete_completion autocomplete\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return [line for line in done.stdout.splitlines() if line]


@pytest.fixture
def shell_env(env) -> dict:
    """The test environment with the command on PATH, as it is for a user who installed it. Typer's test switch
    makes the completion flags take the shell by name, rather than detect the one the tests run in."""
    return {**env, "PATH": f"{Path(console_script()).parent}{os.pathsep}{env.get('PATH', '')}",
            "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}


def test_bash_completes_options_choices_and_model_names(shell_env):
    shown = subprocess.run([console_script(), "--show-completion", "bash"], capture_output=True, text=True,
                           env=shell_env, timeout=60)
    assert shown.returncode == 0 and "_autocomplete_completion" in shown.stdout
    script = shown.stdout
    assert tab(shell_env, script, ["autocomplete", "--sty"]) == ["--style"]
    assert tab(shell_env, script, ["autocomplete", "--style", ""]) == ["auto", "query", "text"]
    assert tab(shell_env, script, ["autocomplete", "-m", "smol"]) == ["smollm2-135m"]
    assert "gpt2" in tab(shell_env, script, ["autocomplete", "--model", ""])
    assert set(tab(shell_env, script, ["autocomplete", "--sugg"])) == {"--suggest"}


def test_install_completion_for_bash_writes_a_script_bash_runs(shell_env, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    installing = {**shell_env, "HOME": str(home)}
    done = subprocess.run([console_script(), "--install-completion", "bash"], capture_output=True, text=True,
                          env=installing, timeout=60)
    assert done.returncode == 0, done.stderr
    installed = home / ".bash_completions" / "autocomplete.sh"
    assert installed.is_file() and str(installed) in (home / ".bashrc").read_text()
    assert tab(installing, installed.read_text(), ["autocomplete", "--stop", "l"]) == ["line"]


def test_a_completion_request_loads_no_model_and_no_torch(shell_env):
    """Tab must answer at once: asking for completions imports neither torch nor the model's engine."""
    probe = ("import runpy, sys\n"
             "sys.argv = ['autocomplete']\n"
             "try:\n    runpy.run_module('autocomplete', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print(sorted(m for m in ('torch', 'onnxruntime', 'transformers') if m in sys.modules), "
             "file=sys.stderr)\n")
    done = subprocess.run([os.path.join(Path(console_script()).parent, "python"), "-c", probe], capture_output=True,
                          text=True, timeout=60, env={**shell_env, "_AUTOCOMPLETE_COMPLETE": "complete_bash",
                                                      "COMP_WORDS": "autocomplete -m ", "COMP_CWORD": "2"})
    assert "smollm2-135m" in done.stdout.split() and done.stderr.strip().endswith("[]"), done.stderr
