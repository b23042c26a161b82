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
