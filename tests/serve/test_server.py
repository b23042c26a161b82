"""The warm model server: real server processes on Unix sockets in private temporary directories, driven through
autocomplete.serve.client (as the CLI will) and through raw sockets (for what a well-behaved client never sends)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from autocomplete.engine import models
from autocomplete.serve import client
from autocomplete.text.complete import complete
from autocomplete.errors import UserError
from autocomplete.settings import Params
from autocomplete.text.suggest import suggest

GREEDY = Params(temperature=0, max_tokens=20, stop="none", style="text").wire()
# Sampled and unbounded by the stop rule: the longest generation the tiny model makes.
LONG = Params(temperature=1.0, max_tokens=60, stop="none", seed=4, style="text").wire()


def short_dir() -> str:
    """A fresh directory under /tmp: a socket's whole path must fit in 107 bytes, pytest's tmp_path may not."""
    return tempfile.mkdtemp(prefix="ac-srv-", dir="/tmp")


def gone(pid: int, timeout: float) -> bool:
    """Wait (bounded) until process `pid` has exited, reaping it if it is our child."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return True
        except ChildProcessError:  # not our child, or reaped already: ask the kernel
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def shut_down(model: str, pid: int) -> None:
    client.stop(model)
    if not gone(pid, 15):
        os.kill(pid, signal.SIGKILL)
        gone(pid, 5)


def raw(model: str, payload: bytes, timeout: float = 30) -> list[dict]:
    """Send raw bytes as a request; return every reply line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(client.ready_path(model)))
        sock.sendall(payload)
        with sock.makefile("rb") as replies:
            return [json.loads(line) for line in replies]


def wait_for(condition, timeout: float, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


@pytest.fixture(scope="module")
def run_dir():
    """AUTOCOMPLETE_RUNTIME_DIR for this module's shared server: not created yet, so the client makes it."""
    base = short_dir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTOCOMPLETE_RUNTIME_DIR", os.path.join(base, "run"))
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield Path(base, "run")
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def warm(tiny_dir, run_dir) -> str:
    """One server for the module, started the way the CLI will start it; the model key it answers to."""
    model = str(tiny_dir)
    info = client.start(model, device="cpu", idle_timeout=600, wait=120)
    try:
        yield model
    finally:
        shut_down(model, info["pid"])


@pytest.fixture
def own_dir(monkeypatch):
    """A runtime dir of its own, for a test that runs its own server."""
    base = short_dir()
    monkeypatch.setenv("AUTOCOMPLETE_RUNTIME_DIR", base)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_complete_streams_pieces_like_in_process(warm, tiny):
    pieces = []
    done = client.complete(warm, "san", GREEDY, pieces.append)
    local = complete(tiny, "san", Params.from_request(GREEDY), lambda piece: None)
    assert len(pieces) > 1
    assert "".join(pieces) == done["completion"] == local.completion == " francisco weather is good in april?"
    assert done["tokens"] == local.tokens and done["finish_reason"] == "eos"
    assert done["model"] == warm and done["prompt"] == "san" and done["settings"]["temperature"] == 0
    # On the wire: piece lines, then one done line.
    lines = raw(warm, json.dumps({"op": "complete", "prompt": "seoul", "settings": GREEDY}).encode() + b"\n")
    assert len(lines) > 2 and all(set(line) == {"piece"} for line in lines[:-1])
    assert "".join(line["piece"] for line in lines[:-1]) == lines[-1]["done"]["completion"] == " subway map"


def test_suggest_matches_in_process(warm, tiny):
    settings = Params(temperature=1.0, style="text").wire()
    reply = client.suggest(warm, "san", settings, 3, 2)
    local = suggest(tiny, "san", Params.from_request(settings), 3, 2)
    assert reply["model"] == warm
    assert [(s["completion"], s["tokens"]) for s in reply["suggestions"]] == [(s.completion, s.tokens) for s in local]
    # the probabilities of the engine and precision the server runs (the defaults), in process
    same = suggest(models.load(warm, "cpu"), "san", Params.from_request(settings), 3, 2)
    assert [s["probability"] for s in reply["suggestions"]] == pytest.approx([s.probability for s in same], rel=1e-4)


def test_query_style_and_examples_on_the_server_as_in_process(warm, tiny):
    """The style, the examples (sent as lines: the server's working directory is not the caller's) and token
    healing apply on the server exactly as in process."""
    query = Params(temperature=0, max_tokens=8, style="query", examples=("zebra quilt", "amber kettle"))
    done = client.complete(warm, "san fr", query.wire(), lambda piece: None)
    # greedy on the engine and precision the server runs (the defaults): another's rounding can flip a near-tie
    local = complete(models.load(warm, "cpu"), "san fr", query, lambda piece: None)
    assert done["style"] == "query" and "examples" not in done["settings"]
    assert (done["completion"], done["tokens"]) == (local.completion, local.tokens)
    reply = client.suggest(warm, "san fr", query.wire() | {"temperature": 1.0}, 3, 2)
    found = suggest(tiny, "san fr", Params.from_request(query.wire() | {"temperature": 1.0}), 3, 2)
    # the same best suggestion (after a frame the tiny model never saw, its lower rows are near-ties, which what
    # each process read before, in other batches, may round and order otherwise)
    assert reply["style"] == "query" and reply["suggestions"][0]["tokens"] == found[0].tokens
    bad = raw(warm, json.dumps({"op": "complete", "prompt": "san", "settings": {"examples": []}}).encode() + b"\n")
    assert "examples" in bad[-1]["error"]


def test_cancel_mid_stream_then_serve_again(warm, run_dir):
    request = json.dumps({"op": "complete", "prompt": "san", "settings": LONG}).encode() + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:  # read one piece, then hang up
        sock.settimeout(30)
        sock.connect(str(client.socket_path(warm, "cpu")))
        sock.sendall(request)
        with sock.makefile("rb") as replies:
            assert "piece" in json.loads(replies.readline())

    # Hanging up right after the request cancels it at the first token. (The tiny model finishes in
    # milliseconds, so a few tries rule out the hang-up arriving only after it was done.)
    log = client.log_path(warm, "cpu")
    for _ in range(5):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(str(client.socket_path(warm, "cpu")))
            sock.sendall(request)
        if wait_for(lambda: "cancelled a request: the client went away" in log.read_text(), 5):
            break
    assert "cancelled a request: the client went away" in log.read_text()

    pieces = []
    done = client.complete(warm, "seoul", GREEDY, pieces.append)
    assert "".join(pieces) == done["completion"] == " subway map"
    assert "Traceback" not in log.read_text()


@pytest.mark.parametrize("error", [KeyboardInterrupt, BrokenPipeError])
def test_ctrl_c_or_closed_stdout_reaches_the_caller(warm, error):
    """Ctrl-C (or `| head` closing stdout) mid-stream: the client hangs up and re-raises it unchanged."""
    def on_piece(piece):
        raise error

    with pytest.raises(error):
        client.complete(warm, "san", LONG, on_piece)
    assert client.complete(warm, "seoul", GREEDY, lambda piece: None)["completion"] == " subway map"


def test_two_clients_at_once(warm):
    start = threading.Barrier(2, timeout=30)
    results: dict[str, tuple] = {}

    def ask(prompt: str) -> None:
        pieces = []
        start.wait()
        done = client.complete(warm, prompt, GREEDY, pieces.append)
        results[prompt] = ("".join(pieces), done["completion"])

    threads = [threading.Thread(target=ask, args=(p,)) for p in ("san", "seoul")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == {"san": (" francisco weather is good in april?",) * 2, "seoul": (" subway map",) * 2}


def test_bad_requests_get_one_line_errors(warm):
    def error_for(payload: bytes) -> str:
        (reply,) = raw(warm, payload)
        assert set(reply) == {"error"} and "\n" not in reply["error"]
        return reply["error"]

    assert "not a JSON request" in error_for(b"this is not json\n")
    assert "not a JSON request" in error_for(b"[" * 5000 + b"]" * 5000 + b"\n")  # nested past the parser's depth
    assert "JSON object" in error_for(b"[1, 2]\n")
    assert "unknown op 'fly'" in error_for(b'{"op": "fly"}\n')
    assert "missing field 'op'" in error_for(b'{"prompt": "san"}\n')
    assert "missing field 'prompt'" in error_for(b'{"op": "complete"}\n')
    assert "'prefix' must be a str" in error_for(b'{"op": "suggest", "prefix": 3}\n')
    assert "n and words" in error_for(b'{"op": "suggest", "prefix": "san", "n": 0}\n')
    assert "'keystroke' must be a bool" in error_for(b'{"op": "suggest", "prefix": "san", "keystroke": 1}\n')
    assert "'n' must be a int" in error_for(b'{"op": "suggest", "prefix": "san", "n": true}\n')  # True is no count
    assert "unknown setting 'colour'" in error_for(b'{"op": "complete", "prompt": "san", "settings": {"colour": 1}}\n')
    with pytest.raises(UserError, match="temperature must be a finite number"):
        client.complete(warm, "san", {**GREEDY, "temperature": -1}, lambda piece: None)
    with pytest.raises(UserError, match="stop must be one of"):
        client.suggest(warm, "san", {**GREEDY, "stop": "word"}, 3, 3)
    with pytest.raises(UserError, match="top_k has the wrong type"):
        client.complete(warm, "san", {**GREEDY, "top_k": "5"}, lambda piece: None)
    # still serving
    assert client.complete(warm, "seoul", GREEDY, lambda piece: None)["completion"] == " subway map"


def test_private_files(warm, run_dir):
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    sock = client.socket_path(warm, "cpu").stat()
    assert stat.S_ISSOCK(sock.st_mode) and stat.S_IMODE(sock.st_mode) == 0o600
    assert stat.S_IMODE(client.log_path(warm, "cpu").stat().st_mode) == 0o600


def test_status_and_request_count(warm):
    before = client.status(warm)
    assert before["model"] == before["requested"] == warm
    assert before["device"] == "cpu" and before["idle_timeout"] == 600
    assert before["engine"] == "onnx" and before["precision"] == "int8"  # auto on the CPU, for a GPT-2
    assert datetime.fromisoformat(before["since"]) <= datetime.now().astimezone()
    os.kill(before["pid"], 0)  # a live process
    proc_status = Path(f"/proc/{before['pid']}/status")
    if proc_status.exists():  # the socket's umask was for bind only: the loader must be able to make cache dirs
        umask = os.umask(0o022)
        os.umask(umask)
        assert f"Umask:\t{umask:04o}" in proc_status.read_text()
    client.complete(warm, "san", GREEDY, lambda piece: None)
    client.suggest(warm, "san", GREEDY, 2, 2)
    assert client.status(warm)["requests"] == before["requests"] + 2  # status requests don't count
    assert client.status(warm)["requests"] == before["requests"] + 2


def test_client_imports_no_torch(warm, env, run_dir):
    code = (
        "import sys, json\n"
        "from autocomplete.serve import client\n"
        f"model = {warm!r}\n"
        "assert client.running(model) and client.status(model)['model'] == model\n"
        "assert not client.running('no-such-model') and client.status('no-such-model') is None\n"
        "heavy = [name for name in ('torch', 'transformers') if name in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env={**env, "AUTOCOMPLETE_RUNTIME_DIR": str(run_dir)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def light_command(warm: str, run_dir, env: dict, args: list[str], heavy: tuple[str, ...]):
    """Run the command in a fresh interpreter against the warm server; it must not import any of `heavy`."""
    code = (
        "import sys\n"
        "from autocomplete.ui.launch import main\n"
        f"assert main(['-m', {warm!r}, *{args!r}]) == 0\n"
        f"heavy = [name for name in {heavy!r} if name in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env={**env, "AUTOCOMPLETE_RUNTIME_DIR": str(run_dir)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done


def test_the_command_on_a_warm_server_imports_neither_torch_nor_typer(warm, env, run_dir):
    """autocomplete.ui.args reads the command line, then the completion streams from the server."""
    served = client.status(warm)["requests"]
    done = light_command(warm, run_dir, env, ["-t", "0", "san"], ("torch", "transformers", "typer", "pydantic"))
    assert done.stdout == "san francisco weather is good in april?\n"
    assert client.status(warm)["requests"] == served + 1


def test_start_refuse_duplicate_stop(tiny_dir, own_dir, env):
    model = str(tiny_dir)
    info = client.start(model, device="cpu", idle_timeout=600, wait=120)
    try:
        assert client.running(model) and info["requests"] == 0
        # A second server for the same model refuses, in one line on stderr and nothing on stdout.
        second = subprocess.run([sys.executable, "-m", "autocomplete.serve.server", "--model", model, "--device", "cpu"],
                                env={**env, "AUTOCOMPLETE_RUNTIME_DIR": own_dir}, capture_output=True, text=True,
                                timeout=60)
        assert second.returncode != 0 and second.stdout == ""
        assert len(second.stderr.strip().splitlines()) == 1 and "already running" in second.stderr
        assert client.start(model, device="cpu", idle_timeout=600, wait=60)["pid"] == info["pid"]  # starting again finds it

        assert client.stop(model) is True
        assert gone(info["pid"], 15)
        assert not client.socket_path(model, "cpu").exists() and not list(Path(own_dir).glob("*.ready"))
        assert client.stop(model) is False and client.status(model) is None and not client.running(model)
        assert client.complete(model, "san", GREEDY, lambda piece: None) is None  # the CLI then works in-process
        assert client.suggest(model, "san", GREEDY, 3, 3) is None
    finally:
        shut_down(model, info["pid"])


def test_start_reports_a_failed_load(own_dir):
    missing = os.path.join(own_dir, "no-such-model-dir/")
    with pytest.raises(UserError, match="did not start: no such model file or directory"):
        client.start(missing, device="cpu", idle_timeout=60, wait=60)
    assert not client.socket_path(missing, "cpu").exists()


def test_idle_timeout_exits_and_removes_socket(tiny_dir, own_dir, env):
    model = str(tiny_dir)
    path = client.socket_path(model, "cpu")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a dead server's socket file, left behind
    stale.bind(str(path))
    stale.close()
    server = subprocess.Popen([sys.executable, "-m", "autocomplete.serve.server", "--model", model, "--device", "cpu",
                               "--idle-timeout", "2"], env={**env, "AUTOCOMPLETE_RUNTIME_DIR": own_dir},
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: client.status(model) is not None, 60, every=0.2), server.stderr
        assert client.complete(model, "seoul", GREEDY, lambda piece: None)["completion"] == " subway map"
        last_request = time.monotonic()
        out, err = server.communicate(timeout=30)
        assert server.returncode == 0 and out == b""
        assert time.monotonic() - last_request >= 1.5  # allow for the poll interval
        assert not path.exists() and client.status(model) is None
        assert "idle timeout" in client.log_path(model, "cpu").read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)


def test_runtime_dir_is_private(monkeypatch):
    base = Path(short_dir())
    try:
        home = base / "home"  # a directory of the user's that exists already: used, its mode left alone
        home.mkdir(mode=0o755)
        monkeypatch.setenv("AUTOCOMPLETE_RUNTIME_DIR", str(home))
        assert client.runtime_dir() == home and stat.S_IMODE(home.stat().st_mode) == 0o755
        home.chmod(0o777)  # …unless others may write to it
        with pytest.raises(UserError, match="writable by other users"):
            client.runtime_dir()
        made = base / "new" / "run"  # one made here is private
        monkeypatch.setenv("AUTOCOMPLETE_RUNTIME_DIR", str(made))
        with pytest.raises(UserError):
            client.runtime_dir(create=False)  # looking for a server makes nothing
        assert not made.exists()
        assert client.runtime_dir() == made and stat.S_IMODE(made.stat().st_mode) == 0o700

        # No usable user runtime dir (no /run/user/<uid>): a private dir in the temp dir instead.
        monkeypatch.delenv("AUTOCOMPLETE_RUNTIME_DIR")
        monkeypatch.setattr(client.platformdirs, "user_runtime_dir", lambda name: str(base / "absent" / name))
        monkeypatch.setattr(tempfile, "tempdir", str(base))
        fallback = base / f"autocomplete-{os.getuid()}"
        assert client.runtime_dir() == fallback and stat.S_IMODE(fallback.stat().st_mode) == 0o700

        if os.getuid() == 0:  # only root can hand a directory to someone else
            os.chown(fallback, 65534, 65534)
            with pytest.raises(UserError, match="belongs to another user"):
                client.runtime_dir()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_calls_that_need_no_server_leave_the_runtime_dir_alone(cli, tiny_dir, tmp_path):
    absent, shared = tmp_path / "absent" / "run", tmp_path / "shared"
    done = cli("-m", str(tiny_dir), "-t", "0", "san", extra_env={"AUTOCOMPLETE_RUNTIME_DIR": str(absent)})
    assert done.returncode == 0 and not absent.parent.exists()  # not created
    shared.mkdir()
    shared.chmod(0o777)
    env = {"AUTOCOMPLETE_RUNTIME_DIR": str(shared)}
    assert cli("-m", str(tiny_dir), "-t", "0", "san", extra_env=env).returncode == 0  # completes all the same
    refused = cli("-m", str(tiny_dir), "--server", "start", extra_env=env)
    err = refused.stderr.decode()
    assert refused.returncode == 1 and "writable by other users" in err and len(err.strip().splitlines()) == 1
    assert stat.S_IMODE(shared.stat().st_mode) == 0o777 and not list(shared.iterdir())


def test_what_the_server_would_say_reaches_the_user(cli, tiny_dir, smollm2_cache):
    """Notices made on the server (a prompt cut to the context window; the fallback to the starter while loading)
    are shown by the command that asked, on its stderr, not left in the server's log."""
    model = ["-m", str(tiny_dir)]
    assert cli(*model, "--server", "start").returncode == 0
    try:
        long = cli(*model, "-t", "0", "-n", "3", "seoul subway map " * 40 + "san")
        assert long.returncode == 0 and "keeping its last" in long.stderr.decode()
        assert len(long.stderr.decode().strip().splitlines()) == 1
    finally:
        cli(*model, "--server", "stop")
    env = {"AUTOCOMPLETE_CACHE_DIR": str(smollm2_cache)}  # the default model: offline, so the starter
    assert cli("--server", "start", extra_env=env).returncode == 0
    try:
        first = cli("-t", "0", "-n", "2", "san", extra_env=env)
        assert first.returncode == 0 and "using the pip-shipped smollm2-135m" in first.stderr.decode()
        second = cli("-t", "0", "-n", "2", "san", extra_env=env)
        assert second.stderr == b"" and second.stdout == first.stdout  # said once
        # It serves what it loaded: asked for by that model's own name, it is the same server.
        named = ("-m", "smollm2-135m")
        status = json.loads(cli(*named, "--server", "status", "--json", extra_env=env).stdout)
        assert status["running"] and status["model"] == "smollm2-135m" and status["requests"] == 2
        assert cli(*named, "-t", "0", "-n", "2", "san", extra_env=env).stdout == first.stdout
        assert b"already running" in cli(*named, "--server", "start", extra_env=env).stderr
        assert json.loads(cli("--server", "status", "--json", extra_env=env).stdout)["requests"] == 3
    finally:
        cli("--server", "stop", extra_env=env)


@pytest.fixture
def in_process(tiny, own_dir):
    """A Server for the tiny model in this process, on a socket where clients find it, its accept loop in a
    thread: for what needs a hand on its model lock."""
    from autocomplete.serve.server import Server, _listen

    server = Server(tiny, "tiny", idle_timeout=0)
    listener, _ = _listen(client.socket_path("tiny"))
    loop = threading.Thread(target=server.serve, args=(listener,), daemon=True)
    loop.start()
    yield server
    server.stopping.set()
    loop.join(timeout=5)
    listener.close()


def test_a_request_queued_when_the_server_stops_falls_back_in_process(in_process):
    """Waiting behind the last request when `--server stop` comes, a request gets no error: the server hangs up
    without a word, and the client (None) works in-process."""
    replies = []
    with in_process.model_lock:  # the model is busy with someone else's request
        asking = threading.Thread(target=lambda: replies.append(
            client.complete("tiny", "san", GREEDY, lambda piece: None)))
        asking.start()
        assert wait_for(lambda: in_process.busy == 1, 10)  # queued
        assert client.stop("tiny") is True
    asking.join(timeout=10)
    assert replies == [None]


def test_a_suggest_search_stops_when_its_client_hangs_up(in_process, tiny):
    """Ctrl-C on `--suggest` closes the connection; the search stops at its next forward instead of running on
    (up to its 400 expansions) with the model held."""
    from autocomplete.serve.server import Cancelled, Client

    ours, theirs = socket.socketpair()
    theirs.close()  # the client is gone
    forwards, trees = [], []
    real = tiny.engine.tree

    def tree(state):
        trees.append(state)
        grown = real(state)
        step = grown.next_logits
        grown.next_logits = lambda rows: forwards.append(1) or step(rows)
        return grown

    try:
        tiny.engine.tree = tree
        tiny.prefixes = None  # nothing remembered from an earlier test: the search grows a tree of its own
        with pytest.raises(Cancelled, match="went away"):
            in_process.suggest({"prefix": "san", "settings": LONG, "n": 5, "words": 4},
                               Client(ours, threading.Event(), lambda reply: None))
    finally:
        del tiny.engine.tree
        ours.close()
    assert len(trees) == 1 and forwards == []  # the prompt read; no search step


def test_ghost_text_from_the_server_is_the_same_as_in_process(warm, tiny):
    from autocomplete.backend.backends import Served
    from autocomplete.settings import Placement
    from autocomplete.ui.ghost import continuation, streamed_continuation

    served = Served(Placement(warm, "auto", "auto", "auto"), warm, None)
    for text, words in [("san", 4), ("san", 2), ("seoul", 4), ("san ", 3), ("", 4), ("san\n", 4)]:
        assert streamed_continuation(served, text, words, style="text") == continuation(tiny, text, words,
                                                                                      style="text")
    assert streamed_continuation(served, "san", style="text", wanted=lambda: False) == ""


def test_suggestions_from_a_warm_server_import_no_torch(warm, env, run_dir):
    done = light_command(warm, run_dir, env, ["--style", "text", "--suggest", "2", "san"],
                         ("torch", "transformers", "typer"))
    assert done.stdout.startswith("san francisco")


# A real server process with two hooks, for what depends on timing inside it. The first token of the first request
# waits at FIFOs (it opens `running`, then `go`: each open blocks until the test opens the other end), so a stop is
# certain to come while that request runs. And its reply is built a moment after the model is free again, when a
# server that exits on the model lock alone would already be gone.
HOOKED = """
import sys, time
from autocomplete.serve import server

running, go = sys.argv[1:3]
check, record = server.Server._check, server.record

def held(self, asking):
    server.Server._check = check
    open(running, "w").close()
    open(go).close()
    check(self, asking)

def late(*args, **kwargs):
    time.sleep(0.5)
    return record(*args, **kwargs)

server.Server._check, server.record = held, late
sys.exit(server.main(sys.argv[3:]))
"""


def meet(fifo: Path, mode: str, timeout: float = 60) -> None:
    """Open the FIFO, which blocks until the other side opens it too; bounded, so a broken server fails the test."""
    opener = threading.Thread(target=lambda: open(fifo, mode).close(), daemon=True)
    opener.start()
    opener.join(timeout)
    assert not opener.is_alive(), f"the server never reached {fifo.name}"


@pytest.mark.parametrize("how", ["--server stop", "SIGTERM"])
def test_a_request_running_when_the_server_stops_is_finished(how, tiny_dir, env, cli, tmp_path, monkeypatch):
    """`--server stop` or SIGTERM: the server takes no new work and hands back what is queued, but the request
    running finishes: its command exits 0 with its whole output, and the server exits once that reply is sent."""
    from conftest import console_script

    monkeypatch.setenv("AUTOCOMPLETE_RUNTIME_DIR", env["AUTOCOMPLETE_RUNTIME_DIR"])
    model, running, go = str(tiny_dir), tmp_path / "running", tmp_path / "go"
    os.mkfifo(running)
    os.mkfifo(go)
    server = subprocess.Popen([sys.executable, "-P", "-c", HOOKED, str(running), str(go), "--model", model,
                               "--device", "cpu", "--idle-timeout", "0"], env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    asking = None
    try:
        assert wait_for(lambda: client.status(model) is not None, 60, every=0.2)
        asking = subprocess.Popen([console_script(), "-m", model, "-t", "0", "san"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        meet(running, "r")  # generating, the model held
        if how == "SIGTERM":
            server.send_signal(signal.SIGTERM)
            assert wait_for(lambda: not client.running(model), 10)
        else:
            stopped = cli("-m", model, "--server", "stop")
            assert stopped.returncode == 0 and b"Stopped" in stopped.stderr  # returns once nothing is accepted
        meet(go, "w")
        out, err = asking.communicate(timeout=60)
        assert (asking.returncode, out, err) == (0, b"san francisco weather is good in april?\n", b"")
        assert server.wait(timeout=30) == 0
        log = client.log_path(model, "cpu").read_text()
        said = "stopping: interrupted" if how == "SIGTERM" else "stopping: stop requested"
        assert said in log and "cancelled" not in log and "Traceback" not in log
    finally:
        for process in (asking, server):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def test_past_the_connection_cap_a_request_waits_its_turn(in_process):
    """Connections that send nothing hold their place until READ_TIMEOUT; past MAX_CONNECTIONS of them, a request
    waits in the listen backlog (no error), and is answered once a place frees."""
    from autocomplete.serve.server import MAX_CONNECTIONS

    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(str(client.socket_path("tiny")))
        return sock

    idle, replies = [], []
    try:
        for count in range(1, MAX_CONNECTIONS + 1):  # one at a time: the listen backlog is shorter than that
            idle.append(connect())
            assert wait_for(lambda: in_process.connections == count, 10)
        asking = threading.Thread(target=lambda: replies.append(
            client.complete("tiny", "seoul", GREEDY, lambda piece: None)))
        asking.start()
        asking.join(1)
        assert asking.is_alive() and in_process.connections == MAX_CONNECTIONS  # waiting, not refused
        idle.pop().close()
        asking.join(30)
        assert replies and replies[0]["completion"] == " subway map"
    finally:
        for sock in idle:
            sock.close()
    assert wait_for(lambda: in_process.connections == 0, 10)


def test_many_clients_at_once_are_all_served(in_process):
    """More clients than MAX_CONNECTIONS at once, the model busy: every one is answered by the server."""
    from autocomplete.serve.server import MAX_CONNECTIONS

    clients = MAX_CONNECTIONS + 8
    replies, failed = [], []

    def ask() -> None:
        try:
            replies.append(client.complete("tiny", "seoul", GREEDY, lambda piece: None))
        except UserError as error:
            failed.append(str(error))

    with in_process.model_lock:  # the model is busy: they all arrive before any is answered
        asking = [threading.Thread(target=ask) for _ in range(clients)]
        for thread in asking:
            thread.start()
        assert wait_for(lambda: in_process.connections == MAX_CONNECTIONS, 10)
    for thread in asking:
        thread.join(60)
    assert failed == [] and [reply["completion"] for reply in replies] == [" subway map"] * clients


def test_a_client_that_does_not_read_does_not_hold_the_model(in_process, monkeypatch):
    """A client that stops reading mid-stream (a suspended one) fills its socket; the next client is served at
    once, not after WRITE_TIMEOUT: replies are written by a thread of their own, never with the model held."""
    from autocomplete.serve import server

    real = server.complete

    def chatty(lm, prompt, settings, on_piece, check):  # a long stream, as a big model's 4,096 tokens
        for _ in range(20_000):
            on_piece("x")
        return real(lm, prompt, settings, on_piece, check)

    monkeypatch.setattr(server, "complete", chatty)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stuck:
        stuck.connect(str(client.socket_path("tiny")))
        stuck.sendall(json.dumps({"op": "complete", "prompt": "san", "settings": GREEDY}).encode() + b"\n")
        assert wait_for(lambda: in_process.requests == 1, 10)  # it has the model; it never reads a byte
        started = time.monotonic()
        pieces = []
        done = client.complete("tiny", "seoul", GREEDY, pieces.append)
        assert time.monotonic() - started < server.WRITE_TIMEOUT / 3
        assert "".join(pieces).endswith(done["completion"]) and done["completion"] == " subway map"


def test_a_client_that_only_shuts_down_its_sending_half_is_answered(warm):
    """Shutting down the sending half (all said, `nc -N`) is not a hang-up: the reply comes whole."""
    request = json.dumps({"op": "complete", "prompt": "seoul", "settings": GREEDY}).encode() + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(client.ready_path(warm)))
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        with sock.makefile("rb") as replies:
            said = [json.loads(line) for line in replies]
    assert said[-1]["done"]["completion"] == " subway map"
    assert "".join(reply["piece"] for reply in said[:-1]) == " subway map"


def test_an_oversize_request_gets_one_error_and_the_server_goes_on(warm):
    """A server reads at most client.MAX_REQUEST bytes of a request; the client doesn't send a longer one (the
    command then works in-process, as with no server)."""
    payload = b'{"op": "complete", "prompt": "' + b"a" * client.MAX_REQUEST
    (reply,) = raw(warm, payload[:client.MAX_REQUEST + 1])  # one byte more than it reads, and no line end
    assert reply == {"error": f"request longer than {client.MAX_REQUEST} bytes"}
    served = client.status(warm)["requests"]
    assert client.complete(warm, "a" * client.MAX_REQUEST, GREEDY, lambda piece: None) is None
    assert client.status(warm)["requests"] == served  # not sent
    assert client.complete(warm, "seoul", GREEDY, lambda piece: None)["completion"] == " subway map"


def test_requests_go_as_utf8_and_the_longest_the_cli_makes_fits(warm, tiny):
    from autocomplete.text.frames import MAX_EXAMPLES_BYTES
    from autocomplete.settings import MAX_PROMPT_BYTES

    assert client.encode({"prompt": "서울 café"}) == '{"prompt": "서울 café"}\n'.encode()
    odd = {"prompt": "a\udcff\x01\"\\"}  # a lone surrogate: undecodable bytes in a command-line argument
    assert json.loads(client.encode(odd)) == odd
    # All the stdin the CLI reads and the largest examples file, in the characters JSON makes longest.
    worst = {"op": "suggest", "prefix": "\x01" * MAX_PROMPT_BYTES, "n": 5, "words": 3,
             "settings": {**GREEDY, "examples": ["\x01"] * (MAX_EXAMPLES_BYTES // 2)}}  # "\x01\n" lines
    assert len(client.encode(worst)) <= client.MAX_REQUEST
    # (a phrase the tiny model memorised: after text it never saw, its near-ties hang on float rounding, which
    # differs between processes on some CPUs)
    done = client.complete(warm, "서울 날씨는", GREEDY, lambda piece: None)
    local = complete(tiny, "서울 날씨는", Params.from_request(GREEDY), lambda piece: None)
    assert done["prompt"] == "서울 날씨는" and done["tokens"] == local.tokens and local.completion


def test_autocomplete_debug_is_an_on_off_flag(own_dir, env):
    """AUTOCOMPLETE_DEBUG=0 is off (library warnings ignored in the log), as in the CLI; a value that is neither is
    one fatal line. Something listening on the server's socket makes main() stop right after, loading nothing."""
    code = ("import sys, warnings\n"
            "from autocomplete.serve import server\n"
            "status = server.main(['--model', 'debug-flag'])\n"
            "print(status, any(f[0] == 'ignore' and f[1] is None and f[2] is Warning for f in warnings.filters),"
            " file=sys.__stdout__)\n")  # a blanket ignore (other packages add their own narrow ones)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(client.socket_path("debug-flag")))
        listener.listen(8)
        for value, ignored in [("0", True), ("", True), ("off", True), ("1", False), ("yes", False)]:
            done = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=60,
                                  env={**env, "AUTOCOMPLETE_RUNTIME_DIR": own_dir, "AUTOCOMPLETE_DEBUG": value})
            assert done.stdout == f"1 {ignored}\n" and "already running" in done.stderr, (value, done.stderr)
        bad = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=60,
                             env={**env, "AUTOCOMPLETE_RUNTIME_DIR": own_dir, "AUTOCOMPLETE_DEBUG": "maybe"})
    assert bad.stdout.startswith("1 ") and bad.stderr.count("\n") == 1
    assert "AUTOCOMPLETE_DEBUG must be 1 or 0" in bad.stderr and "'maybe'" in bad.stderr
