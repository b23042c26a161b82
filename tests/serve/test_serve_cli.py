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
    ignored, and a precision is served only by a server running it (the default's, auto, is int8 on onnx)."""
    model = ("-m", str(tiny_dir))
    assert cli(*model, "--server", "start", "--device", "cpu").returncode == 0
    try:
        status = json.loads(cli(*model, "--server", "status", "--json").stdout)
        assert status["precision"] == "int8" and status["engine"] == "onnx"  # what auto chose, not "auto"
        assert served(cli, *model) == served(cli, *model, "--device", "cpu") == 0
        assert cli(*model, "-t", "0", "san").returncode == 0
        assert cli(*model, "--device", "cpu", "-t", "0", "san").returncode == 0
        assert cli(*model, "--precision", "int8", "-t", "0", "san").returncode == 0  # what it runs: served
        assert served(cli, *model) == 3
        elsewhere = cli(*model, "--device", "cuda", "-t", "0", "san")  # no GPU here: said, not served on the CPU
        assert elsewhere.returncode == 1 and b"'cuda' is not available" in elsewhere.stderr
        assert served(cli, *model, "--device", "cuda") == -1
        fp32 = cli(*model, "--precision", "fp32", "-t", "0", "--json", "san")  # in-process
        assert fp32.returncode == 0 and served(cli, *model) == 3
        assert served(cli, *model, "--precision", "fp32") == -1

        assert cli(*model, "--precision", "fp32", "--server", "start").returncode == 0
        try:
            status = json.loads(cli(*model, "--precision", "fp32", "--server", "status", "--json").stdout)
            assert status["precision"] == "fp32" and status["device"] == "cpu"
            again = cli(*model, "--precision", "fp32", "-t", "0", "--json", "san")
            assert json.loads(again.stdout)["completion"] == json.loads(fp32.stdout)["completion"]
            assert served(cli, *model, "--precision", "fp32") == 1 and served(cli, *model) == 3
        finally:
            cli(*model, "--precision", "fp32", "--server", "stop")
    finally:
        cli(*model, "--server", "stop")
    assert served(cli, *model) == -1


def test_a_slow_cold_call_on_a_terminal_tips_the_server_once(env, cli, tiny_dir):
    from conftest import console_script
    from ptyrun import PtySession

    assert b"--server start" not in cli("-m", str(tiny_dir), "-t", "0", "san").stderr  # not on a pipe...
    screens = []
    for _ in range(2):
        # the torch engine: its import makes a slow cold load (a cached ONNX export loads in a fraction of a second)
        session = PtySession([console_script(), "-m", str(tiny_dir), "--engine", "torch", "-t", "0", "san"],
                             {**env, "TERM": "xterm"})
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


def test_socket_names_differ_by_engine(monkeypatch, tmp_path):
    from autocomplete.serve import client

    monkeypatch.setenv("AUTOCOMPLETE_RUNTIME_DIR", str(tmp_path))
    names = {engine: client.socket_path("gpt2", "cpu", "fp32", engine) for engine in ("auto", "onnx", "torch")}
    assert len(set(names.values())) == 3
    assert client.socket_path("gpt2", "cpu", "fp32") == names["auto"]  # the default is auto
    assert client.ready_path("gpt2", "cpu", "fp32", "torch") != client.ready_path("gpt2", "cpu", "fp32", "onnx")


def test_a_server_answers_for_the_engine_that_runs_it_and_auto_only_if_started_for_auto():
    from types import SimpleNamespace

    from autocomplete.serve.server import Server

    def answers(started_for: str, ran: str, precision: str = "auto", ran_at: str = "fp32") -> set[tuple[str, str]]:
        lm = SimpleNamespace(name="m", device="cpu", engine=SimpleNamespace(name=ran, precision=ran_at))
        server = SimpleNamespace(key="m", lm=lm, precision=precision, engine=started_for)
        return {(precision, engine) for _, _, precision, engine in Server.answers_to(server, "auto")}

    def engines(started_for: str, ran: str) -> set[str]:
        return {engine for _, engine in answers(started_for, ran)}

    assert engines("auto", "onnx") == {"auto", "onnx"}
    assert engines("auto", "torch") == {"auto", "torch"}
    assert engines("torch", "torch") == {"torch"}  # not for auto, which would pick onnx on the CPU
    assert engines("onnx", "onnx") == {"onnx"}
    # the precision likewise: what runs, and auto only if started for it
    assert answers("onnx", "onnx", "auto", "int8") == {("auto", "onnx"), ("int8", "onnx")}
    assert answers("onnx", "onnx", "fp32", "fp32") == {("fp32", "onnx")}


def test_a_server_serves_its_engine_only_and_says_which(cli, tiny_dir):
    """A torch server answers --engine torch, never an onnx (or auto) request; status says the engine that runs it.
    A server started for auto answers auto and what auto chose (onnx on the CPU for a GPT-2)."""
    model = ("-m", str(tiny_dir))
    torch = (*model, "--engine", "torch")
    started = cli(*torch, "--server", "start")
    assert started.returncode == 0, started.stderr
    try:
        status = json.loads(cli(*torch, "--server", "status", "--json").stdout)
        assert status["engine"] == "torch" and status["device"] == "cpu" and status["precision"] == "fp32"
        shown = cli(*torch, "--server", "status").stdout.decode()
        assert f"{tiny_dir} on cpu (fp32, torch), pid {status['pid']}" in shown
        assert served(cli, *model) == served(cli, *model, "--engine", "onnx") == -1
        done = cli(*torch, "-t", "0", "--json", "san")
        assert json.loads(done.stdout)["engine"] == "torch" and served(cli, *torch) == 1
        onnx = cli(*model, "--engine", "onnx", "-t", "0", "--json", "san")  # in-process
        assert json.loads(onnx.stdout)["engine"] == "onnx" and served(cli, *torch) == 1

        auto = (*model, "--device", "cpu")
        assert cli(*auto, "--server", "start").returncode == 0
        try:
            status = json.loads(cli(*auto, "--server", "status", "--json").stdout)
            assert status["engine"] == "onnx"
            assert cli(*auto, "--server", "status").stdout.decode().startswith(f"{tiny_dir} on cpu (int8, onnx)")
            for asked in ((), ("--engine", "onnx"), ("--engine", "auto")):
                record = json.loads(cli(*auto, *asked, "-t", "0", "--json", "san").stdout)
                assert record["engine"] == "onnx"
            assert served(cli, *auto) == served(cli, *auto, "--engine", "onnx") == 3
            suggested = json.loads(cli(*auto, "--suggest", "2", "--json", "san").stdout)
            assert suggested["engine"] == "onnx" and served(cli, *auto) == 4
            assert served(cli, *torch) == 1  # --engine torch still goes to the torch server
        finally:
            cli(*auto, "--server", "stop")
    finally:
        stopped = cli(*torch, "--server", "stop")
    assert b"Stopped the server for " in stopped.stderr and b"(torch)" in stopped.stderr
    assert served(cli, *torch) == -1
