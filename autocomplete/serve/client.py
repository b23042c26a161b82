"""The client side of the warm model server (autocomplete.serve.server): find its Unix socket, start it, ask it.

The CLI imports this on every run, so it stays cheap: stdlib, platformdirs and two of the CLI's own light modules
(for their size limits), never torch.
Protocol: one JSON request line per connection; the server answers with JSON lines (see autocomplete.serve.server).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from autocomplete import terminal
from autocomplete.errors import UserError
from autocomplete.settings import MAX_PROMPT_BYTES
from autocomplete.text.frames import MAX_EXAMPLES_BYTES

if TYPE_CHECKING:
    import subprocess

CONNECT_TIMEOUT = 0.5  # a live server's listen backlog accepts at once, even while it is busy
STATUS_TIMEOUT = 5.0  # status skips the model queue: only a server still loading its model is slower
REPLY_TIMEOUT = 600.0  # longest silence while a request waits in the queue or the model thinks
STOP_WAIT = 10.0
# sun_path holds 108 bytes on Linux (104 on macOS), the terminating NUL included.
MAX_SOCKET_PATH = 103 if sys.platform == "darwin" else 107
# The longest request line a server reads: all the stdin the CLI reads as the prompt plus the largest examples
# file, each byte JSON-escaped at worst (a control character is 6 bytes, \u0001; text goes as UTF-8, so most of it
# is 1 byte a byte), and room for the rest (settings, a prompt on the command line). A longer request (a huge
# command-line prompt) is not sent: the caller works in-process, as with no server.
MAX_REQUEST = 6 * (MAX_PROMPT_BYTES + MAX_EXAMPLES_BYTES) + (64 << 10)


def runtime_dir(create: bool = True) -> Path:
    """A private directory for sockets and logs: $AUTOCOMPLETE_RUNTIME_DIR, else the user runtime dir, else
    <tmp>/autocomplete-<uid> when that can't be created (no /run/user/<uid> in containers, cron, su).
    create=False (looking for a server): one that doesn't exist yet is not made, and is a UserError."""
    explicit = os.environ.get("AUTOCOMPLETE_RUNTIME_DIR")
    if explicit:
        return _private_dir(Path(explicit), parents=True, create=create)
    with warnings.catch_warnings():  # platformdirs warns on stderr when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        preferred = Path(platformdirs.user_runtime_dir("autocomplete"))
    try:
        return _private_dir(preferred, parents=False, create=create)  # its parent is the login session's
    except UserError:
        pass
    import tempfile  # here, not at the top: every shell call imports this module

    return _private_dir(Path(tempfile.gettempdir()) / f"autocomplete-{os.getuid()}", parents=False, create=create)


def _private_dir(path: Path, parents: bool, create: bool = True) -> Path:
    """`path` as a directory of this user's that nobody else can write to. Only a directory made here is
    chmod'ed (to 0700): one that already exists (a $HOME named by AUTOCOMPLETE_RUNTIME_DIR, say) keeps its mode,
    and is refused if others may write to it."""
    made = False
    try:
        if create:
            if parents:
                path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(path, 0o700)
                made = True
        info = os.lstat(path)  # lstat: in a shared /tmp, a symlink planted by someone else must not be followed
    except OSError as error:
        raise UserError(f"can't create the runtime directory {path}: {error.strerror or error}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UserError(f"{path} is not a directory; remove it or set AUTOCOMPLETE_RUNTIME_DIR")
    if info.st_uid != os.getuid():
        raise UserError(f"{path} belongs to another user; refusing to keep model server sockets there "
                        f"(set AUTOCOMPLETE_RUNTIME_DIR to a directory of your own)")
    if made:
        os.chmod(path, 0o700)
    elif info.st_mode & 0o022:
        raise UserError(f"{path} is writable by other users (mode {stat.S_IMODE(info.st_mode):o}); refusing to "
                        f"keep model server sockets there (set AUTOCOMPLETE_RUNTIME_DIR to a private directory)")
    return path


def _name(model: str | None, device: str, precision: str, engine: str) -> str:
    """The file name (without suffix) for a server of `model` ("" or None: the default model) on `device` ("auto":
    any) at `precision`, run by `engine`."""
    return hashlib.sha256(f"{model or ''}\0{device}\0{precision}\0{engine}".encode()).hexdigest()[:16]


def socket_path(model: str | None, device: str = "auto", precision: str = "auto", engine: str = "auto",
                create: bool = True) -> Path:
    """Where a server started for exactly this listens (from before its model loads)."""
    path = runtime_dir(create) / f"{_name(model, device, precision, engine)}.sock"
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise UserError(f"the runtime directory path is too long for a Unix socket ({path}); "
                        f"set AUTOCOMPLETE_RUNTIME_DIR to a shorter path")
    return path


def log_path(model: str | None, device: str = "auto", precision: str = "auto", engine: str = "auto") -> Path:
    return socket_path(model, device, precision, engine).with_suffix(".log")


def ready_path(model: str | None, device: str = "auto", precision: str = "auto", engine: str = "auto",
               create: bool = True) -> Path:
    """A link a ready server makes to its socket for each way of asking for what it loaded: the name it was started
    with and the model's own names, its device and "auto", its engine (and "auto" when auto chose it; see
    autocomplete.serve.server.Server.answers_to)."""
    return socket_path(model, device, precision, engine, create).with_suffix(".ready")


def _found(model: str | None, device: str = "auto", precision: str = "auto", engine: str = "auto") -> Path | None:
    """The socket of a server for this model, device, precision and engine: a ready one serving it under any of its
    names, else one started for exactly this and still loading. None when there is none, or the runtime dir is
    unusable or not there (it is made only by start()): then the CLI works in-process instead of failing."""
    try:
        ready = ready_path(model, device, precision, engine, create=False)
    except UserError:
        return None
    return ready if ready.exists() else ready.with_suffix(".sock")


def _connect(path: Path | None, timeout: float = CONNECT_TIMEOUT) -> socket.socket | None:
    if path is None:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(os.fspath(path))
    except OSError:  # no socket file, or a stale one nobody listens on
        sock.close()
        return None
    return sock


def running(model: str | None, device: str = "auto", precision: str = "auto", engine: str = "auto") -> bool:
    """Whether a server for `model` is listening: one connect attempt, no request."""
    return listening(_found(model, device, precision, engine))


def listening(path: Path | None) -> bool:
    sock = _connect(path)
    if sock is None:
        return False
    sock.close()
    return True


def _call(path: Path | None, request: dict, timeout: float,
          on_piece: Callable[[str], None] | None = None) -> dict | None:
    """Send one request and read the reply, streaming pieces to on_piece. None when no server answers: nothing
    listens, or it closed the connection before its first line (it was just stopping or idling out); or when the
    request is longer than a server reads."""
    line = encode(request)
    if len(line) > MAX_REQUEST:
        return None
    sock = _connect(path)
    if sock is None:
        return None
    # Leaving this block closes the socket, which is what cancels the request on the server; that includes
    # on_piece raising (BrokenPipeError on stdout) and Ctrl-C, which propagate untouched.
    with sock, sock.makefile("rb") as reader:
        sock.settimeout(timeout)
        answered = False
        while True:
            reply = _exchange(sock, reader, None if answered else line, path, timeout)
            if reply is None:
                if answered:
                    raise UserError(f"the model server closed the connection mid-reply; see {_log_of(path)}")
                return None
            answered = True
            if "notice" in reply:  # something the server would have said on its own stderr
                terminal.notice(reply["notice"])
                continue
            if "piece" not in reply:
                return reply
            if on_piece is not None:
                on_piece(reply["piece"])


def encode(request: dict) -> bytes:
    """A request line in UTF-8 (non-ASCII text as itself: \\uXXXX would make it 2 to 6 times longer). A lone surrogate
    (undecodable bytes in a command-line argument) can't be UTF-8: it goes as its JSON escape, as json.dumps's
    default would write it (only strings hold one, so the backslash form is that escape)."""
    return json.dumps(request, ensure_ascii=False).encode("utf-8", "backslashreplace") + b"\n"


def _exchange(sock: socket.socket, reader, request: bytes | None, path: Path, timeout: float) -> dict | None:
    """Send the request line if given, then read one reply line; None if the server hung up."""
    try:
        if request is not None:
            # A server that answered without reading all of it (a request too long) hangs up: its answer is still
            # to be read.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(request)
        line = reader.readline()
    except TimeoutError:
        raise UserError(f"the model server did not answer for {timeout:g} s; see {_log_of(path)}") from None
    except OSError:  # reset, broken pipe
        return None
    if not line:
        return None
    try:
        reply = json.loads(line)
    except ValueError:
        raise UserError(f"the model server sent something that is not JSON: {line[:80]!r}") from None
    if "error" in reply:
        raise UserError(f"model server: {reply['error']}")
    return reply


def status(model: str | None, device: str = "auto", precision: str = "auto", engine: str = "auto") -> dict | None:
    """The server's status dict, or None if no server for `model` is running."""
    try:
        return _call(_found(model, device, precision, engine), {"op": "status"}, STATUS_TIMEOUT)
    except UserError:
        return None


def stop(model: str | None, device: str = "auto", precision: str = "auto", engine: str = "auto") -> bool:
    """Ask the server to exit; False if none was running. Returns once it no longer accepts connections."""
    path = _found(model, device, precision, engine)
    try:
        if _call(path, {"op": "stop"}, STATUS_TIMEOUT) is None:
            return False
    except UserError:
        return False
    deadline = time.monotonic() + STOP_WAIT
    while time.monotonic() < deadline:
        sock = _connect(path)
        if sock is None:
            break
        sock.close()
        time.sleep(0.05)
    return True


def start(model: str | None, device: str = "auto", precision: str = "auto", engine: str = "auto", *,
          idle_timeout: float, wait: float = 120) -> dict:
    """Start a detached server for `model` and wait until it answers (loading the model may take a while).
    Returns its status. A server already up for `model` (under any of its names, or one that wins a race to
    start) is used as it is."""
    log = log_path(model, device, precision, engine)

    def spawn() -> subprocess.Popen:
        return _spawn(model, device, precision, engine, idle_timeout, log)

    process = None if running(model, device, precision, engine) else spawn()
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            if process is not None:
                process.kill()  # a start that failed leaves nothing behind
                process.wait(timeout=10)
            raise UserError(f"the model server for {_shown(model)} did not answer within {wait:g} s{_last_line(log)}")
        try:
            # The server binds its socket before loading the model, so once connected this waits out the load.
            info = _call(_found(model, device, precision, engine), {"op": "status"}, left)
        except UserError:
            info = None
        if info is not None:
            return info
        if process is None:  # the server we saw went away before answering: start our own
            process = spawn()
        elif process.poll() is not None:
            raise UserError(f"the model server for {_shown(model)} did not start{_last_line(log)}")
        time.sleep(0.05)


def _spawn(model: str | None, device: str, precision: str, engine: str, idle_timeout: float,
           log: Path) -> subprocess.Popen:
    import subprocess

    # -P: the user's working directory is not put on sys.path, so an autocomplete/ (or typing.py…) there isn't run.
    command = [sys.executable, "-P", "-m", "autocomplete.serve.server", "--device", device, "--precision", precision,
               "--engine", engine, "--idle-timeout", str(idle_timeout)]
    if model is not None:
        command += ["--model", model]
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchmod(fd, 0o600)
        # Its own session: Ctrl-C or closing the terminal that started it doesn't reach it.
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=fd,
                                start_new_session=True)
    finally:
        os.close(fd)


def complete(model: str | None, prompt: str, settings: dict, on_piece: Callable[[str], None],
             device: str = "auto", precision: str = "auto", engine: str = "auto") -> dict | None:
    """Complete `prompt` on the server, streaming pieces to on_piece; returns the done record (as
    autocomplete.text.records.record gives it), or None if no server for `model` is running (so the caller can work in-process)."""
    reply = _call(_found(model, device, precision, engine),
                  {"op": "complete", "prompt": prompt, "settings": settings}, REPLY_TIMEOUT, on_piece)
    return None if reply is None else reply["done"]


def suggest(model: str | None, prefix: str, settings: dict, n: int, words: int, device: str = "auto",
            precision: str = "auto", engine: str = "auto", keystroke: bool = False) -> dict | None:
    """{"suggestions": [{"completion", "probability", "tokens"}], "model": name, "engine": what runs it, ...}, or
    None if no server. keystroke: a list refreshed per keystroke (the REPL's), its reads bounded."""
    request = {"op": "suggest", "prefix": prefix, "settings": settings, "n": n, "words": words,
               "keystroke": keystroke}
    return _call(_found(model, device, precision, engine), request, REPLY_TIMEOUT)


def _log_of(sock: Path) -> Path:
    return Path(os.path.realpath(sock)).with_suffix(".log")  # a ready link's server logs beside its socket


def _shown(model: str | None) -> str:
    return model if model else "the default model"


def _last_line(log: Path) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
            lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    if not lines:
        return f" (log: {log})"
    return f": {lines[-1].removeprefix('autocomplete server: ')} (log: {log})"
