"""The config file (autocomplete/config.py): defaults set once, below options and environment variables, checked
like options (one line naming the file and the key, exit 2). Through the installed command, as a user meets it."""

from __future__ import annotations

import json

import pytest


def write_config(env, text: str):
    path = env["XDG_CONFIG_HOME"] + "/autocomplete/config.toml"
    import os

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def record(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_file_sets_defaults(cli, env, tiny_dir):
    write_config(env, f'model = "{tiny_dir}"\ntemperature = 0\nmax-tokens = 3\ntop_k = 7\nstop = "none"\n')
    done = record(cli("--json", "san"))
    assert done["model"] == str(tiny_dir) and done["completion"] == " francisco weather is"
    assert {k: done["settings"][k] for k in ("temperature", "max_tokens", "top_k", "stop")} == {
        "temperature": 0.0, "max_tokens": 3, "top_k": 7, "stop": "none"}


def test_an_option_beats_the_environment_which_beats_the_file(cli, env, tiny_dir, tmp_path):
    write_config(env, f'model = "{tmp_path}/nowhere"\nstyle = "query"\ntemperature = 0\n')
    as_env = record(cli("--json", "san", extra_env={"AUTOCOMPLETE_MODEL": str(tiny_dir)}))  # env style: text
    assert as_env["model"] == str(tiny_dir) and as_env["style"] == "text"
    as_option = record(cli("--json", "-m", str(tiny_dir), "--style", "query", "-t", "0.5", "san",
                           extra_env={"AUTOCOMPLETE_MODEL": f"{tmp_path}/nowhere"}))
    assert as_option["model"] == str(tiny_dir) and as_option["settings"]["style"] == "query"
    assert as_option["settings"]["temperature"] == 0.5
    without_env = cli("--json", "san", extra_env={"AUTOCOMPLETE_STYLE": ""})
    assert without_env.returncode == 1 and b"nowhere" in without_env.stderr  # the file's model, tried


def test_the_file_sets_the_engine_below_the_environment_and_the_option(cli, env, tiny_dir):
    """The engine that ran is in the record: the file's, unless AUTOCOMPLETE_ENGINE or --engine says otherwise."""
    write_config(env, f'model = "{tiny_dir}"\ntemperature = 0\nengine = "torch"\n')
    from_file = record(cli("--json", "san"))
    assert from_file["engine"] == "torch" and from_file["completion"] == " francisco weather is good in april?"
    from_env = record(cli("--json", "san", extra_env={"AUTOCOMPLETE_ENGINE": "onnx"}))
    assert from_env["engine"] == "onnx" and from_env["completion"] == from_file["completion"]
    from_option = record(cli("--json", "--engine", "torch", "san", extra_env={"AUTOCOMPLETE_ENGINE": "onnx"}))
    assert from_option["engine"] == "torch"


def test_the_typer_path_reads_it_too(cli, env, tiny_dir):
    """A command line autocomplete.ui.args declines (a short-option cluster) is parsed by Typer: same defaults."""
    write_config(env, f'model = "{tiny_dir}"\nmax_tokens = 2\n')
    done = record(cli("--json", "-it0", input=b"san\n"))  # a cluster: Typer parses it; a piped REPL
    assert done["model"] == str(tiny_dir) and done["settings"]["max_tokens"] == 2


@pytest.mark.parametrize("text, says", [
    ("temperature = ", "not valid TOML"),
    ("temperature = " + "[" * 5000 + "]" * 5000, "not valid TOML (nested too deeply)"),
    ("temprature = 0.5", "unknown key 'temprature' (did you mean temperature?)"),
    ("colour = 'red'", "unknown key 'colour' (known: model, temperature,"),
    ("temperature = 'hot'", "temperature: must be a number"),
    ("top_p = 0", "top_p: top-p must be in (0, 1]"),
    ("style = 'loud'", "style: style must be one of auto, query, text"),
    ("precision = 'int4'", "precision: precision must be one of auto, fp32, int8"),
    ("engine = 'gpu'", "engine: engine must be one of auto, onnx, torch"),
    ("engine = 1", "engine: must be a string"),
    ("idle_timeout = -1", "idle_timeout: must be 0 or more"),
    ("api_key = 'sk-123'", "never keep an API key in a file"),
])
def test_a_bad_file_is_one_line_naming_the_file_and_key(cli, env, tiny_dir, text, says):
    path = write_config(env, text + "\n")
    for args in (("-m", str(tiny_dir), "san"), ("-m", str(tiny_dir), "-it0")):  # our parser, then Typer's
        result = cli(*args)
        err = result.stderr.decode()
        assert result.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert path in err and says in err
        assert "sk-123" not in err


def test_autocomplete_config_points_elsewhere(cli, env, tiny_dir, tmp_path):
    elsewhere = tmp_path / "mine.toml"
    elsewhere.write_text(f'model = "{tiny_dir}"\ntemperature = 0\n')
    done = record(cli("--json", "san", extra_env={"AUTOCOMPLETE_CONFIG": str(elsewhere)}))
    assert done["model"] == str(tiny_dir) and done["settings"]["temperature"] == 0.0


def test_help_names_the_file(cli, env):
    result = cli("--help")
    assert result.returncode == 0 and (env["XDG_CONFIG_HOME"] + "/autocomplete/config.toml").encode() in result.stdout


def test_list_models_says_where_defaults_come_from(cli, env, tiny_hf_home):
    path = write_config(env, 'model = "smollm2-135m"\ntemperature = 0.4\n')
    table = cli("--list-models", extra_env={"HF_HOME": str(tiny_hf_home)})
    assert table.returncode == 0
    assert f"Defaults from {path}: model smollm2-135m, temperature 0.4" in table.stdout.decode()
