"""The warm server from the command line: start, use it without being asked, status, --no-server, stop."""

from __future__ import annotations

import json


def test_server_lifecycle_from_the_cli(cli, tiny_dir):
    model = ("-m", str(tiny_dir))
    assert cli(*model, "--server", "status").returncode == 1  # none yet
    in_process = cli(*model, "-t", "0", "--json", "san")
    try:
        started = cli(*model, "--server", "start", "--idle-timeout", "60")
        assert started.returncode == 0, started.stderr
        assert b"Server ready" in started.stderr
        status = json.loads(cli(*model, "--server", "status", "--json").stdout)
        assert status["running"] and status["requests"] == 0 and status["idle_timeout"] == 60

        served = cli(*model, "-t", "0", "--json", "san")
        assert served.returncode == 0, served.stderr
        first, second = json.loads(in_process.stdout), json.loads(served.stdout)
        assert second["completion"] == first["completion"] == " francisco weather is good in april?"
        assert second["tokens"] == first["tokens"]
        assert cli(*model, "-t", "0", "san").stdout.decode() == "san francisco weather is good in april?\n"
        suggested = cli(*model, "--suggest", "2", "-t", "1", "san").stdout.decode().splitlines()
        helped = cli(*model, "--help")  # the command answers these itself, server or not
        assert helped.returncode == 0 and b"Usage" in helped.stdout
        refused = cli(*model, "-t", "-1", "san")
        assert refused.returncode == 2 and refused.stderr.decode().count("\n") == 1
        assert b"temperature must be" in refused.stderr
        assert suggested[0].startswith("san francisco")
        assert json.loads(cli(*model, "--server", "status", "--json").stdout)["requests"] == 3

        local = cli(*model, "--no-server", "-t", "0", "san")  # not counted by the server
        assert local.stdout.decode() == "san francisco weather is good in april?\n"
        assert json.loads(cli(*model, "--server", "status", "--json").stdout)["requests"] == 3
    finally:
        stopped = cli(*model, "--server", "stop")
    assert stopped.returncode == 0 and b"Stopped" in stopped.stderr
    assert cli(*model, "--server", "status").returncode == 1


def test_autostart_is_opt_in(cli, tiny_dir):
    model = ("-m", str(tiny_dir))
    try:
        result = cli(*model, "-t", "0", "san", extra_env={"AUTOCOMPLETE_AUTOSTART": "1"})
        assert result.returncode == 0 and result.stdout.decode() == "san francisco weather is good in april?\n"
        assert json.loads(cli(*model, "--server", "status", "--json").stdout)["requests"] == 1
    finally:
        cli(*model, "--server", "stop")


def served(cli, *args: str, env: dict | None = None) -> int:
    """Requests the running server has served (the model and device named by args), or -1 if none runs."""
    found = cli(*args, "--server", "status", "--json", extra_env=env)
    return json.loads(found.stdout)["requests"] if found.returncode == 0 else -1


def test_a_server_serves_what_it_loaded_on_its_device_and_precision(cli, tiny_dir):
    """A server answers for its device and precision (and "auto"), not for others: --device is never silently
    ignored, and an int8 command is served by an int8 server only."""
    model = ("-m", str(tiny_dir))
    assert cli(*model, "--server", "start", "--device", "cpu").returncode == 0
    try:
        assert served(cli, *model) == served(cli, *model, "--device", "cpu") == 0
        assert cli(*model, "-t", "0", "san").returncode == 0
        assert cli(*model, "--device", "cpu", "-t", "0", "san").returncode == 0
        assert served(cli, *model) == 2
        elsewhere = cli(*model, "--device", "cuda", "-t", "0", "san")  # no GPU here: said, not served on the CPU
        assert elsewhere.returncode == 1 and b"'cuda' is not available" in elsewhere.stderr
        assert served(cli, *model, "--device", "cuda") == -1
        int8 = cli(*model, "--precision", "int8", "-t", "0", "--json", "san")  # in-process
        assert int8.returncode == 0 and served(cli, *model) == 2
        assert served(cli, *model, "--precision", "int8") == -1

        assert cli(*model, "--precision", "int8", "--server", "start").returncode == 0
        try:
            status = json.loads(cli(*model, "--precision", "int8", "--server", "status", "--json").stdout)
            assert status["precision"] == "int8" and status["device"] == "cpu"
            again = cli(*model, "--precision", "int8", "-t", "0", "--json", "san")
            assert json.loads(again.stdout)["completion"] == json.loads(int8.stdout)["completion"]
            assert served(cli, *model, "--precision", "int8") == 1 and served(cli, *model) == 2
        finally:
            cli(*model, "--precision", "int8", "--server", "stop")
    finally:
        cli(*model, "--server", "stop")
    assert served(cli, *model) == -1


def test_a_slow_cold_call_on_a_terminal_tips_the_server_once(env, cli, tiny_dir):
    from conftest import console_script
    from ptyrun import PtySession

    assert b"--server start" not in cli("-m", str(tiny_dir), "-t", "0", "san").stderr  # not on a pipe...
    screens = []
    for _ in range(2):
        session = PtySession([console_script(), "-m", str(tiny_dir), "-t", "0", "san"], {**env, "TERM": "xterm"})
        try:
            session.expect("april?")
            assert session.wait() == 0
            session._read(0.2)
        finally:
            session.close()
        screens.append(session.screen)
    assert "`autocomplete --server start` keeps it loaded" in screens[0]  # ...on a terminal, once
    assert "--server start" not in screens[1]


def test_a_package_in_the_working_directory_does_not_replace_the_server(env, tiny_dir, tmp_path):
    """The server is spawned with -P: an autocomplete/ (or typing.py) where the user runs `--server start` is not
    imported in place of ours."""
    import subprocess

    from conftest import console_script

    marker, cwd = tmp_path / "shadow-ran", tmp_path / "work"
    plant = f"open({str(marker)!r}, 'a').write(__name__ + ' ')\n"
    (cwd / "autocomplete" / "serve").mkdir(parents=True)
    for name in ("__init__.py", "serve/__init__.py", "serve/server.py"):
        (cwd / "autocomplete" / name).write_text(plant)
    (cwd / "typing.py").write_text(plant)

    def run(*args: str):
        return subprocess.run([console_script(), "-m", str(tiny_dir), *args], cwd=cwd, env=env, capture_output=True,
                              timeout=300)

    try:
        started = run("--server", "start")
        assert started.returncode == 0, started.stderr
        assert json.loads(run("--server", "status", "--json").stdout)["running"]
    finally:
        run("--server", "stop")
    assert not marker.exists()
