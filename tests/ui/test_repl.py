"""The REPL: /commands change settings (checked like the CLI's options), and a real terminal session."""

from __future__ import annotations

import json
import stat

import pytest

from autocomplete.ui.repl import Repl
from autocomplete.settings import Settings
from conftest import console_script
from ptyrun import PtySession


@pytest.fixture
def repl():
    return Repl(Settings(device="cpu"))


@pytest.mark.parametrize(
    "line, field, value",
    [("/temp 1.2", "temperature", 1.2), ("/top-k 40", "top_k", 40), ("/top-p 0.9", "top_p", 0.9),
     ("/max 20", "max_tokens", 20), ("/seed 7", "seed", 7), ("/stop line", "stop", "line"),
     ("/style query", "style", "query"), ("/style text", "style", "text")],
)
def test_commands_change_settings(repl, line, field, value):
    assert repl.command(line) is None
    assert getattr(repl.settings, field) == value


@pytest.mark.parametrize("line", ["/temp -1", "/temp nan", "/top-p 0", "/top-k -2", "/max 0", "/stop word",
                                  "/temp", "/max lots", "/style poem", "/temp abc", "/suggest -1", "/suggest 0",
                                  "/suggest many", "/seed x", "/seed -1"])
def test_bad_values_are_refused_and_change_nothing(repl, line, capsys):
    before = repl.settings.params(), repl.settings.suggest
    repl.command(line)
    assert (repl.settings.params(), repl.settings.suggest) == before
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "could not convert" not in err and "invalid literal" not in err  # Python's words, not ours


def test_seed_off_and_quit(repl):
    repl.command("/seed 3")
    repl.command("/seed off")
    assert repl.settings.seed is None
    assert repl.command("/quit") == "quit"


def test_terminal_session(env, tiny_dir, tmp_path):
    """Type, see it complete, Ctrl-C at the prompt keeps the session, Ctrl-D leaves with status 0."""
    session = PtySession([console_script(), "-m", str(tiny_dir), "-t", "0"], {**env, "TERM": "xterm"})
    try:
        session.expect(">")
        session.send("san\r")
        session.expect("san francisco weather is good in april?")
        session.expect(">")
        session.send("seo\x03")  # Ctrl-C at the prompt: drop the line, keep going
        session.expect(">")
        session.send("/temp 0\r")
        session.expect(">")
        session.send("seoul\r")
        session.expect("seoul subway map\n>")  # the completion's line, then a fresh prompt
        assert session.leave() == 0
    finally:
        session.close()
    history = tmp_path / "data" / "history"
    assert "san" in history.read_text() and "seoul" in history.read_text()
    assert stat.S_IMODE(history.stat().st_mode) == 0o600


def test_style_command_applies_to_the_next_line(cli, tiny_dir, tmp_path):
    examples = tmp_path / "examples.txt"
    examples.write_text("zebra quilt\namber kettle\n")
    result = cli("-m", str(tiny_dir), "-t", "0", "--json", "--examples", str(examples), "-i",
                 input=b"san\n/style query\nsan\n/style auto\nsan francisco weather is good. In\n")
    assert result.returncode == 0, result.stderr
    styles = [json.loads(line)["style"] for line in result.stdout.decode().splitlines()]
    assert styles == ["text", "query", "text"]


def test_commands_say_what_changed(cli, tiny_dir):
    result = cli("-m", str(tiny_dir), "-i", input=b"/temp 1.2\n/suggest 3\n/seed 7\n/style query\n/help\n"
                                                   b"/model gpt2-xl\n")
    err = result.stderr.decode()
    assert result.returncode == 0 and "Traceback" not in err
    for said in ("temperature 1.2", "suggestions: 3 per line", "seed 7", "style query", "Ctrl-→"):
        assert said in err
    assert "/model" in err.splitlines()[-1] and "--model" not in err.splitlines()[-1]


def test_the_repl_uses_a_running_server(cli, tiny_dir):
    """With a server for the model running, the REPL's completions and suggestions are the server's (counted
    there) and the same as in process; /explain, which runs here, loads the model here."""
    lines = b"san\n/suggest 2\nseoul\n/explain\nsan\n"
    model = ("-m", str(tiny_dir), "-t", "0", "--seed", "1", "--json", "-i")
    alone = cli(*model, input=lines)
    assert alone.returncode == 0, alone.stderr
    assert cli("-m", str(tiny_dir), "--server", "start").returncode == 0
    try:
        served = cli(*model, input=lines)
        assert served.returncode == 0, served.stderr
        status = json.loads(cli("-m", str(tiny_dir), "--server", "status", "--json").stdout)
    finally:
        cli("-m", str(tiny_dir), "--server", "stop")
    assert status["requests"] == 2

    def comparable(out: bytes) -> list:
        records = [json.loads(line) for line in out.decode().splitlines()]
        for record in records:
            record.pop("stats", None)  # timings
        return records

    assert comparable(served.stdout) == comparable(alone.stdout)
    assert len(comparable(served.stdout)) >= 3


def test_a_terminal_session_on_a_server_that_goes_away(env, tiny_dir, cli):
    """Ghost text and Enter come from the server; when it stops, the session goes on with the model loaded here."""
    model = ["-m", str(tiny_dir)]
    assert cli(*model, "--server", "start").returncode == 0
    session = PtySession([console_script(), *model, "-t", "0"], {**env, "TERM": "xterm"})
    try:
        session.expect("on the running server")
        session.expect(">")
        session.send("san")
        session.expect(" francisco weather is good")  # ghost text, from the server
        session.send("\r")
        session.expect("san francisco weather is good in april?")
        session.expect(">")
        assert json.loads(cli(*model, "--server", "status", "--json").stdout)["requests"] >= 2
        assert cli(*model, "--server", "stop").returncode == 0
        session.send("seoul\r")
        session.expect("seoul subway map\n>")
        assert session.leave() == 0
    finally:
        session.close()
        cli(*model, "--server", "stop")
