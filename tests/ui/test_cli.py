"""The installed `autocomplete` command, run as a user runs it: arguments, stdin, output modes, exit codes."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys

import pytest

from conftest import console_script

SAN = "san francisco weather is good in april?"


def lines(result) -> list[str]:
    return result.stdout.decode().splitlines()


def one_error_line(result) -> str:
    """The whole of stderr, which must be a single line and no traceback."""
    err = result.stderr.decode()
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


# --- what a user gets --------------------------------------------------------------------------------------


def test_prompt_argument_prints_prompt_then_completion(cli, tiny_dir):
    result = cli("-m", str(tiny_dir), "-t", "0", "san")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == SAN + "\n"
    assert b"\x1b" not in result.stdout  # piped: plain text


def test_default_model_resolves_through_the_hf_cache(cli, tiny_hf_home):
    result = cli("-t", "0", "san", extra_env={"HF_HOME": str(tiny_hf_home)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == SAN + "\n"


def test_model_env_var(cli, tiny_dir):
    result = cli("-t", "0", "--only-new", "seoul", extra_env={"AUTOCOMPLETE_MODEL": str(tiny_dir)})
    assert result.stdout.decode() == " subway map\n"


def test_only_new(cli, tiny_dir):
    assert cli("-m", str(tiny_dir), "-t", "0", "--only-new", "san").stdout.decode() == SAN[3:] + "\n"


def test_stdin_alone_and_stdin_then_prompt(cli, tiny_dir):
    alone = cli("-m", str(tiny_dir), "-t", "0", input=b"the best way to learn python is\n")
    assert alone.stdout.decode() == "the best way to learn python is to practice every day.\n"
    joined = cli("-m", str(tiny_dir), "-t", "0", "francisco", input=b"san\n")
    assert joined.stdout.decode() == SAN + "\n"  # "san" + " " + "francisco", then the rest


def test_each_line(cli, tiny_dir):
    result = cli("-m", str(tiny_dir), "-t", "0", "--each-line", input="san\n\nseoul\n서울\n".encode())
    assert result.returncode == 0, result.stderr
    assert lines(result) == [SAN, "", "seoul subway map", "서울 날씨는 오늘 맑아요"]


def test_json_lines(cli, tiny_dir):
    result = cli("-m", str(tiny_dir), "-t", "0", "--json", "--each-line", input=b"san\nseoul\n")
    records = [json.loads(line) for line in lines(result)]
    assert [r["prompt"] for r in records] == ["san", "seoul"]
    first = records[0]
    assert first["completion"] == SAN[3:]
    assert first["model"] == str(tiny_dir)
    assert first["finish_reason"] == "eos"
    assert isinstance(first["tokens"], list) and all(isinstance(t, int) for t in first["tokens"])
    assert first["settings"]["temperature"] == 0 and first["settings"]["stop"] == "sentence"
    assert first["stats"]["time_to_first_token_s"] > 0 and first["stats"]["tokens_per_second"] > 0


def test_json_says_which_engine_ran(cli, tiny_dir):
    torch, onnx = (json.loads(cli("-m", str(tiny_dir), "-t", "0", "--json", "--engine", engine, "san").stdout)
                   for engine in ("torch", "onnx"))
    assert torch["engine"] == "torch" and onnx["engine"] == "onnx"
    assert torch["completion"] == onnx["completion"] == SAN[3:]
    on_cpu = json.loads(cli("-m", str(tiny_dir), "--device", "cpu", "-t", "0", "--json", "san").stdout)
    assert on_cpu["engine"] == "onnx"  # auto: ONNX Runtime on the CPU for a GPT-2
    suggested = json.loads(cli("-m", str(tiny_dir), "--engine", "torch", "--suggest", "2", "--json", "san").stdout)
    assert suggested["engine"] == "torch"


def test_json_over_the_api_names_no_engine(monkeypatch, capsys):
    """Over --api the server runs the model and doesn't say how: the record's engine is null."""
    from autocomplete.settings import Settings
    from autocomplete.text import remote
    from autocomplete.text.records import Completion
    from autocomplete.backend.backends import OverApi
    from autocomplete.ui import actions
    from autocomplete.ui.render import JsonRenderer

    done = Completion("san", " francisco", None, "stop", 1, 4, 0.1, 10.0)
    monkeypatch.setattr(remote, "complete", lambda api, name, text, settings, on_piece, check: done)
    settings = Settings(api="http://h:1/v1", json_lines=True)
    actions.run(OverApi(api=None, name="served"), "san", settings, JsonRenderer())
    shown = json.loads(capsys.readouterr().out)
    assert shown["model"] == "served" and shown["completion"] == " francisco" and shown["engine"] is None


def test_each_line_fed_keystrokes_lists_them_as_the_repl_does(monkeypatch, capsys):
    """A line that types on the one before (or takes letters back), or that the line after types on, is a keystroke:
    its list is bounded as the REPL's (KEYSTROKE_READS); any other line is a list asked for once, searched in full.
    The bound's note is said once."""
    from autocomplete.settings import Settings
    from autocomplete.text.suggest import KEYSTROKE_READS
    from autocomplete.text.suggestions import Found, Suggestion
    from autocomplete.ui import actions, dispatch

    asked = []

    class Recording:
        name, engine = "stand-in", None

        def suggest(self, prefix, params, n, words, check, reads):
            asked.append((prefix, reads))
            return Found([Suggestion("k", 0.5, [1])], exact=False)

    monkeypatch.setattr(actions, "elsewhere", lambda settings: Recording())
    typed = ["new", "new y", "new yo", "new y", "paris", "", "paris", "tokyo", "lon", "london"]
    # each with the line after it, as --each-line gives it where that has arrived ("lon"'s hadn't yet)
    following = [*typed[1:9], None, None]
    assert dispatch._run_all(zip(typed, following), Settings(suggest=1, each_line=True)) == 0
    bounded = KEYSTROKE_READS
    assert asked == [("new", bounded), ("new y", bounded), ("new yo", bounded), ("new y", bounded), ("paris", None),
                     ("paris", None), ("tokyo", None), ("lon", None), ("london", bounded)]
    out, err = capsys.readouterr()
    assert [line.split() for line in out.splitlines()[:2]] == [["newk", "50.0%"], ["new", "yk", "50.0%"]]
    assert out.splitlines()[5] == ""  # the blank line, kept
    assert err.count(Found.note) == 1


def test_each_line_ends_cleanly_with_its_pipe_still_open(env):
    """--each-line reads stdin a line ahead in a thread, which may be waiting on a pipe still open when the command
    ends (here: an error at the first line): one line on stderr and its exit status, never Python's abort at exit."""
    proc = subprocess.Popen([console_script(), "-m", "/nonexistent/model", "--each-line"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        proc.stdin.write(b"san\n")
        proc.stdin.flush()
        assert proc.wait(timeout=120) == 1
        result = subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.read(), proc.stderr.read())
    finally:
        proc.kill()
        proc.stdin.close()
    assert "no such model" in one_error_line(result)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the lost one, said
def test_a_ctrl_c_python_loses_in_a_finalizer_still_stops_the_completion(monkeypatch, capsys):
    """Python raises KeyboardInterrupt in whatever runs when SIGINT comes, and a finalizer the garbage collector runs
    swallows it: the stream went on to its end (the flaky Ctrl-C test). The work's next check raises it again."""
    import signal

    from autocomplete.backend.backends import OverApi
    from autocomplete.engine.api import Api
    from autocomplete.settings import Settings
    from autocomplete.text import remote
    from autocomplete.ui import actions
    from autocomplete.ui.render import TextRenderer

    class Finalized:
        def __del__(self):
            signal.raise_signal(signal.SIGINT)  # its handler runs here, and its KeyboardInterrupt is lost

    def stream(self, body):
        for i in range(50):
            if i == 3:
                Finalized()  # dropped at once: the Ctrl-C comes while its finalizer runs
            yield {"choices": [{"text": f" word{i}"}]}

    monkeypatch.setattr(Api, "stream", stream)
    monkeypatch.setattr(remote, "heal", lambda *args: None)
    settings = Settings(api="http://h:1/v1", style="text", stop="none", max_tokens=100)
    interrupted = actions.run(OverApi(Api("http://h:1/v1"), "m"), "go", settings, TextRenderer(file=sys.stdout))
    out = capsys.readouterr().out
    assert interrupted and out.startswith("go word0 word1") and "word49" not in out and out.endswith("\n")


def test_a_bad_engine_in_the_environment_is_one_line(cli, tiny_dir):
    result = cli("-m", str(tiny_dir), "san", extra_env={"AUTOCOMPLETE_ENGINE": "gpu"})
    assert result.returncode == 2 and result.stdout == b""
    line = one_error_line(result)
    assert "AUTOCOMPLETE_ENGINE" in line and "'gpu' is not one of 'auto', 'onnx', 'torch'" in line


def test_same_seed_same_completion_with_or_without_json(cli, tiny_dir):
    args = ("-m", str(tiny_dir), "-t", "1.3", "--seed", "11", "--stop", "none", "--only-new", "xyz")
    text = cli(*args).stdout.decode().removesuffix("\n")
    record = json.loads(cli(*args, "--json").stdout)
    assert record["completion"] == text and record["settings"]["seed"] == 11
    other = json.loads(cli("-m", str(tiny_dir), "-t", "1.3", "--seed", "12", "--stop", "none", "--json", "xyz").stdout)
    assert other["tokens"] != record["tokens"]


def test_a_negative_seed_is_one_line_and_exit_2_before_anything_is_written(cli, tiny_dir):
    result = cli("-m", str(tiny_dir), "--seed", "-1", "san")
    err = result.stderr.decode()
    assert result.returncode == 2 and result.stdout == b""
    assert "seed must be" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_repl_on_piped_stdin(cli, tiny_dir):
    script = "san\n/temp 0.0\n/top-p 2\n/max 2\nseoul\n/bogus\n/quit\nnever completed\n"
    result = cli("-m", str(tiny_dir), "-t", "0", "-i", input=script.encode())
    assert result.returncode == 0, result.stderr
    two_tokens = cli("-m", str(tiny_dir), "-t", "0", "-n", "2", "seoul").stdout.decode().strip()
    assert lines(result) == [SAN, two_tokens]  # /max 2 took effect; /quit ended it
    err = result.stderr.decode()
    assert "top-p must be in (0, 1]" in err and "unknown command /bogus" in err


def test_python_dash_m(env, tiny_dir):
    result = subprocess.run([sys.executable, "-m", "autocomplete", "-m", str(tiny_dir), "-t", "0", "san"],
                            capture_output=True, env=env, input=b"")
    assert result.stdout.decode() == SAN + "\n"


def test_version_help_and_usage_errors_never_import_torch(env):
    code = ("import sys; from autocomplete.ui.cli import run\n"
            "for argv in (['--version'], ['--help'], ['-t', '-1', 'x'], ['--list-models']):\n"
            "    run(argv)\n"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env)
    assert result.returncode == 0, result.stderr


def test_list_models(cli, tiny_hf_home):
    result = cli("--list-models", "--json", extra_env={"HF_HOME": str(tiny_hf_home)})
    rows = {row["alias"]: row for row in map(json.loads, lines(result))}
    assert {"gpt2", "distilgpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "smollm2-135m"} <= set(rows)
    assert rows["gpt2"]["local"] and rows["gpt2"]["default"] and not rows["gpt2-xl"]["local"]
    table = cli("--list-models", extra_env={"HF_HOME": str(tiny_hf_home)}).stdout.decode()
    assert "gpt2 (default)" in table and "openai-community/gpt2" in table
    assert rows["gpt2-xl"]["if_missing"] == "HF_HUB_OFFLINE is set: not usable now" and not rows["gpt2"]["if_missing"]
    assert "Engine auto: onnx (ONNX Runtime) on the CPU for the models it exports (GPT-2, Llama), torch " in table
    assert all("engine" not in row.lower() for row in lines(result))  # --json: the rows only
    torch = cli("--list-models", extra_env={"HF_HOME": str(tiny_hf_home), "AUTOCOMPLETE_ENGINE": "torch"})
    assert "Engine torch: torch, on the device --device picks" in torch.stdout.decode()


def test_list_models_says_what_a_missing_default_would_do(cli):
    """With no Hub and gpt2 not cached, the default falls back to the starter: the list says so."""
    rows = {row["alias"]: row for row in map(json.loads, lines(cli("--list-models", "--json")))}
    assert rows["gpt2"]["if_missing"] == "HF_HUB_OFFLINE is set: the default falls back to smollm2-135m"
    assert "first use" in rows["smollm2-135m"]["if_missing"]
    assert "downloads on first use" not in cli("--list-models").stdout.decode()


# --- terminal output ---------------------------------------------------------------------------------------


def run_in_pty(args, env):
    """Run with stdout on a pseudo-terminal (stdin empty), return what the terminal showed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([console_script(), *args], stdin=subprocess.DEVNULL, stdout=follower,
                            stderr=subprocess.PIPE, env={**env, "TERM": "xterm-256color"})
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    proc.wait(timeout=120)
    os.close(leader)
    return shown.decode()


def test_terminal_output_is_coloured(env, tiny_dir):
    shown = run_in_pty(["-m", str(tiny_dir), "-t", "0", "san"], env)
    assert "\x1b[" in shown
    assert "francisco" in shown


def test_control_characters_are_shown_not_obeyed_on_a_terminal(env, tiny_dir):
    """A terminal acts on ESC sequences (a title change here); what the tool writes to one shows them instead."""
    prompt = "san\x1b]0;pwned\x07 \x9b2J"
    shown = run_in_pty(["-m", str(tiny_dir), "-t", "0", "-n", "2", prompt], env)
    assert "\x1b]0;pwned" not in shown and "\x07" not in shown and "\x9b" not in shown
    assert "san\\x1b]0;pwned\\x07 \\x9b2J" in shown
    as_json = subprocess.run([console_script(), "-m", str(tiny_dir), "-t", "0", "-n", "2", "--json", prompt],
                             capture_output=True, env=env)
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["prompt"] == prompt  # JSON keeps the exact text


def test_model_text_is_shown_not_obeyed_on_a_terminal():
    from autocomplete.ui.render import TextRenderer

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    out = TextRenderer(file=screen)
    out.piece(" hi\x1b[2J\x1b]8;;http://x\x07there\n\tok")
    assert "\x1b[2J" not in screen.getvalue() and "\x1b]8" not in screen.getvalue()
    assert " hi\\x1b[2J\\x1b]8;;http://x\\x07there" in screen.getvalue() and "ok" in screen.getvalue()


def test_no_color_is_honoured(env, tiny_dir):
    shown = run_in_pty(["-m", str(tiny_dir), "-t", "0", "san"], {**env, "NO_COLOR": "1"})
    assert "francisco" in shown
    assert "\x1b[3" not in shown and "\x1b[9" not in shown and "38;" not in shown  # no colour codes


# --- bad input: one line on stderr, non-zero exit, no traceback --------------------------------------------


@pytest.mark.parametrize(
    "args, needle",
    [
        (("-t", "-1", "san"), "temperature"),
        (("-t", "nan", "san"), "temperature"),
        (("-t", "inf", "san"), "temperature"),
        (("-p", "0", "san"), "top-p"),
        (("-p", "1.5", "san"), "top-p"),
        (("-k", "-3", "san"), "top-k"),
        (("-n", "0", "san"), "max-tokens"),
        (("--stop", "word", "san"), "--stop"),
        (("--device", "tpu", "san"), "--device"),
        (("--engine", "tpu", "san"), "'tpu' is not one of 'auto', 'onnx', 'torch'"),
        (("--no-such-option",), "--no-such-option"),
        (("-i", "san"), "PROMPT"),
        (("--suggest", "0", "san"), "--suggest must be 1 or more"),
        (("--suggest", "-1", "san"), "--suggest must be 1 or more"),
        (("--words", "0", "--suggest", "3", "san"), "--words must be 1 or more"),
        (("--words", "2", "san"), "use it with --suggest"),
        (("--suggest", "x", "san"), "must be a whole number"),
        (("-t", "abc", "san"), "must be a number"),
        (("--idle-timeout", "-1", "san"), "must be 0 or more"),
        (("--style", "poem", "san"), "'poem' is not one of"),
    ],
)
def test_usage_errors(cli, args, needle):
    result = cli(*args)
    assert result.returncode == 2
    line = one_error_line(result)
    assert needle in line
    assert "Value error" not in line and "Input should" not in line  # the tool's own words
    assert result.stdout == b""


@pytest.mark.parametrize("stdin", [b"", b"   \n\n"])
def test_empty_prompt(cli, tiny_dir, stdin):
    result = cli("-m", str(tiny_dir), input=stdin)
    assert result.returncode == 2
    assert "nothing to complete" in one_error_line(result)


def test_each_line_needs_stdin_lines(env):
    leader, follower = pty.openpty()  # stdin is a terminal: there are no lines to read
    try:
        result = subprocess.run([console_script(), "--each-line"], stdin=follower, capture_output=True, env=env,
                                timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    assert result.returncode == 2 and "pipe them in" in one_error_line(result)


def test_missing_model_path(cli):
    result = cli("-m", "./no/such/model", "san")
    assert result.returncode == 1 and "no such model file or directory" in one_error_line(result)
    result = cli("-m", "missing.gguf", "san")
    assert result.returncode == 1 and "not found" in one_error_line(result)


def test_directory_that_is_not_a_model(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    result = cli("-m", str(tmp_path), "san")
    assert result.returncode == 1 and "not a model directory" in one_error_line(result)


def test_pickled_weights_are_refused(cli, tiny_dir, tmp_path):
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((tiny_dir / name).read_bytes())
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded, ever")
    result = cli("-m", str(tmp_path), "san")
    assert result.returncode == 1 and "safetensors only" in one_error_line(result)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_weights(cli, tiny_dir, tmp_path, damage):
    for path in tiny_dir.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncate" else os.urandom(len(data)))
    result = cli("-m", str(tmp_path), "san")
    assert result.returncode == 1 and "could not load model" in one_error_line(result)


def test_not_a_gguf_file(cli, tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 not gguf at all")
    result = cli("-m", str(fake), "san")
    assert result.returncode == 1 and "is not a GGUF file" in one_error_line(result)


def test_truncated_gguf_file(cli, tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 13)
    result = cli("-m", str(fake), "san")
    said, error = result.stderr.decode().splitlines()  # the step being taken, then what went wrong
    assert said.startswith("Converting model.gguf") and "Traceback" not in error
    assert result.returncode == 1 and error.startswith("autocomplete: could not read GGUF file")


def test_unknown_hub_id_offline_is_not_substituted(cli):
    result = cli("-m", "someone/some-model", "san")
    assert result.returncode == 1
    line = one_error_line(result)
    assert "someone/some-model" in line and "HF_HUB_OFFLINE" in line


def test_explicit_gpt2_offline_is_not_substituted(cli):
    result = cli("-m", "gpt2", "san")
    assert result.returncode == 1 and "not in the local Hugging Face cache" in one_error_line(result)


def test_device_not_available(cli, tiny_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = cli("-m", str(tiny_dir), "--device", "cuda", "san")
    assert result.returncode == 1 and "not available" in one_error_line(result)


def test_non_utf8_stdin_is_replaced_with_a_warning(cli, tiny_dir):
    result = cli("-m", str(tiny_dir), "-t", "0", input=b"se\xffoul\n")
    assert result.returncode == 0
    assert result.stdout.decode().startswith("se\ufffdoul")
    assert "not valid UTF-8" in one_error_line(result)


def test_very_large_stdin_is_cut_to_its_end(cli, tiny_dir):
    huge = b"seoul subway map\n" * 400_000 + b"san"  # ~6.8 MB
    result = cli("-m", str(tiny_dir), "-t", "0", "--only-new", input=huge)
    assert result.returncode == 0, result.stderr
    err = result.stderr.decode()
    assert "last part only" in err and "keeping its last" in err
    assert "Traceback" not in err


def test_closed_stdout_exits_quietly(env, tiny_dir):
    proc = subprocess.Popen([console_script(), "-m", str(tiny_dir), "-t", "0", "--each-line"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdin.write(b"san\n" * 3000)
    proc.stdin.close()
    assert proc.stdout.read(5) == b"san f"
    proc.stdout.close()  # like `| head -c 5`
    assert proc.wait(timeout=300) == 0
    assert proc.stderr.read() == b""


@pytest.mark.parametrize("args", [("--explain", "san"), ("--suggest", "5", "--each-line"), ("--list-models",)])
def test_a_closed_pipe_after_rich_output_exits_quietly(env, tiny_dir, args):
    """Rich's tables (--explain, --suggest, --list-models) into `| head -1`: exit 0 and nothing on stderr, like any
    other output (Rich's own handling exits 1)."""
    proc = subprocess.Popen([console_script(), "-m", str(tiny_dir), "-t", "0", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdin.write(b"san\n" * 3000 if "--each-line" in args else b"")
    proc.stdin.close()
    assert proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    assert proc.wait(timeout=300) == 0
    assert proc.stderr.read() == b""


def test_help_reads_like_the_tool(cli):
    shown = cli("--help", extra_env={"COLUMNS": "120"}).stdout.decode()
    assert "like a search box" in shown and "Examples:" in shown and 'autocomplete --suggest 5 "stock mar"' in shown
    import re

    assert not re.search(r"<\w+(\[\w+\])?>", shown)  # no Typer placeholders (<str>, <int>, <bool>): metavars
    assert "PROMPT" in shown and "-m, --model" not in shown and "MODEL" in shown
    flowing = re.sub(r"[\s│]+", " ", shown)  # the table's lines joined: a default may wrap
    assert "[default: 0.7]" in flowing and "[default: gpt2]" in flowing  # not eaten as markup
    assert "--install-completion" in shown and "--show-completion" in shown


def test_a_prompt_argument_that_is_not_utf8_is_replaced_with_a_warning(env, tiny_dir):
    """Bytes that aren't UTF-8 reach Python as lone surrogates, which --json (and the tokenizer) can't write."""
    result = subprocess.run([os.fsencode(console_script()), b"-m", os.fsencode(tiny_dir), b"-t", b"0", b"--json",
                             b"se\xffoul"], capture_output=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["prompt"] == "se\ufffdoul"
    assert "PROMPT is not valid UTF-8" in one_error_line(result)


def test_a_tiny_temperature_is_greedy(cli, tiny_dir):
    assert cli("-m", str(tiny_dir), "-t", "1e-39", "san").stdout.decode() == SAN + "\n"


@pytest.mark.parametrize("value, debug", [("0", False), ("false", False), ("1", True), ("yes", True)])
def test_autocomplete_debug_is_on_or_off(value, debug, monkeypatch):
    from autocomplete.ui.dispatch import guarded

    def fails():
        raise RuntimeError("a bug")

    monkeypatch.setenv("AUTOCOMPLETE_DEBUG", value)
    if debug:
        with pytest.raises(RuntimeError):
            guarded(fails)
    else:
        assert guarded(fails) == 1  # one line, not the traceback


def test_an_on_off_variable_that_is_neither_is_one_line(cli, tiny_dir):
    for name in ("AUTOCOMPLETE_DEBUG", "AUTOCOMPLETE_AUTOSTART"):
        result = cli("-m", str(tiny_dir), "san", extra_env={name: "maybe"})
        assert result.returncode == 2 and f"{name} must be 1 or 0" in one_error_line(result)


def test_a_partly_cached_hub_model_is_not_taken_for_a_whole_one(cli, tiny_dir, tmp_path):
    """Config and tokenizer cached but no safetensors (a .bin-only download, an interrupted one): not usable
    offline, and said so, instead of failing to load it."""
    import shutil

    from tiny_gpt2 import install_in_hf_cache

    partial = tmp_path / "partial"
    shutil.copytree(tiny_dir, partial)
    (partial / "model.safetensors").rename(partial / "pytorch_model.bin")
    home = tmp_path / "hf-partial"
    install_in_hf_cache(partial, home)
    env = {"HF_HOME": str(home)}
    result = cli("-m", "gpt2", "-t", "0", "san", extra_env=env)
    line = one_error_line(result)
    assert result.returncode == 1 and "only partly in the local Hugging Face cache (no safetensors weights)" in line
    rows = {row["alias"]: row for row in map(json.loads, lines(cli("--list-models", "--json", extra_env=env)))}
    assert not rows["gpt2"]["local"]
