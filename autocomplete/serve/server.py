"""The warm model server: load a model once, then serve completions over a Unix socket until idle (like ollama's
keep-alive). Started detached by autocomplete.serve.client.start(); run by hand as

    python -m autocomplete.serve.server [--model NAME] [--device auto] [--precision auto] [--engine auto]
                                        [--idle-timeout SECONDS]

It listens on <runtime dir>/<hash of model, device, precision, engine>.sock from before the model loads (so a racing
start waits for it), and once ready links <hash>.ready to that socket for every way a user may ask for what it
loaded (the name it was started with, the model's own names; its device and "auto"; its engine, and "auto" when it
was started for auto): a client finds it by what it asks for.

Protocol, newline-delimited JSON, one request per connection:
    {"op": "complete", "prompt", "settings"}  -> {"piece": str} lines, then {"done": record}
    {"op": "suggest", "prefix", "settings", "n", "words"} -> {"suggestions": [...], "model": name, "engine", ...}
    {"op": "status"} -> {"model", "requested", "device", "precision", "engine", "pid", "since", "requests",
                         "idle_timeout"}
    {"op": "stop"} -> {"ok": true}, then the server exits once the request running has been answered (the ones
                      queued are hung up on without a word: their clients work in-process)
Anything wrong gets {"error": "<one line>"}. Connections past MAX_CONNECTIONS wait in the listen backlog until one
closes. Closing the connection cancels the request; shutting down only its sending half does not. Replies are written
by a thread of their own (serve/outbox.py): the model is never held while a client doesn't read.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from autocomplete import terminal
from autocomplete.cancel import Cancelled
from autocomplete.engine import models
from autocomplete.engine.models import ALIASES
from autocomplete.errors import UserError, first_line
from autocomplete.serve import client
from autocomplete.serve.outbox import Outbox
from autocomplete.settings import DEFAULT_MODEL, DEVICES, ENGINES, PRECISIONS, Params, Settings, env_flag
from autocomplete.text import frames
from autocomplete.text.complete import complete
from autocomplete.text.records import record

MAX_CONNECTIONS = 16  # requests queue for the one model anyway; each may buffer a request of client.MAX_REQUEST
READ_TIMEOUT = 30.0  # a client that connects but never sends its request line
WRITE_TIMEOUT = 60.0  # a client that stops reading must not hold the model forever
LOCK_WAIT = 3.0  # a server that was just stopped may still hold the lock for a moment
DRAIN_WAIT = 10.0  # at exit, how long the request running may take to finish; past it, it is cancelled
CANCEL_WAIT = 1.0  # …and how long it then has to tell its client so
POLL = 0.2  # how often the accept loop looks at the idle clock and the stop flag

log = logging.getLogger("autocomplete.serve.server")
_STOPPED = {"ok": True}  # the stop reply; handle() stops the server once it has been sent


class BadRequest(Exception):
    """The request is wrong; the message goes back to the client as {"error": ...}."""


class Declined(Exception):
    """Queued behind the last request before a stop: hang up without a word, so the client works in-process."""


def parse_params(raw) -> Params:
    """A request's settings dict -> Params, checked exactly as the CLI checks them. Missing keys take defaults."""
    try:
        return Params.from_request(raw)
    except ValueError as error:
        raise BadRequest(str(error)) from None


def _field(request: dict, name: str, kind: type, default=None):
    if name not in request:
        if default is None:
            raise BadRequest(f"missing field {name!r}")
        return default
    value = request[name]
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):  # True is an int too
        raise BadRequest(f"field {name!r} must be a {kind.__name__}")
    return value


def hung_up(conn: socket.socket, eof_is_gone: bool = False) -> bool:
    """Whether the client is gone. A client that only shut down its sending half (it has said all it will) is still
    reading, and a Unix socket tells it from one that closed (POLLHUP). A TCP connection tells them apart only once
    something was written to it (a closed peer answers with a reset); before that, eof_is_gone says how to take an
    end of input."""
    poller = select.poll()
    poller.register(conn, select.POLLIN)
    events = poller.poll(0)
    if not events:
        return False
    if events[0][1] & (select.POLLHUP | select.POLLERR):
        return True
    if not eof_is_gone:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class Client(NamedTuple):
    """The connection a request came on: its socket, whether writing to it has failed, and send(message)."""
    conn: socket.socket
    gone: threading.Event
    send: Callable[[dict], None]


class Server:
    def __init__(self, lm, key: str, idle_timeout: float, load_notices: list[str] | None = None,
                 precision: str = "auto", engine: str = "auto"):
        self.lm, self.key, self.idle_timeout, self.precision = lm, key, idle_timeout, precision
        self.engine = engine  # what it was started for: "auto", or the engine asked for
        self.load_notices = list(load_notices or [])
        self.since = datetime.now().astimezone().isoformat(timespec="seconds")
        self.model_lock = threading.Lock()  # one generation at a time; the rest queue here
        self.state_lock = threading.Lock()
        self.busy = 0  # work requests running or queued: the server is not idle while there are any
        self.connections = 0  # open, at most MAX_CONNECTIONS
        self.answering = 0  # requests read and not yet answered: what an exit waits for
        self.changed = threading.Condition(self.state_lock)  # notified when those two go down
        self.requests = 0
        self.last_used = time.monotonic()
        self.stopping = threading.Event()  # take no more work: what is queued is declined
        self.cancelling = threading.Event()  # and stop what runs, at its next token (past DRAIN_WAIT)
        # Warm up now, not in the first client's call: one token with the default settings runs the first forward
        # and loads (or computes) the query frame's KV cache.
        complete(lm, "warm up", Params(max_tokens=1), lambda piece: None)

    def answers_to(self, device: str) -> set[tuple[str, str, str, str]]:
        """Every (model, device, precision, engine) a client may ask for that this server serves: what it was started
        for, and the loaded model under its own names (its alias, and the default's "" when it is the default
        model), on its device or "auto", by the engine that runs it (and "auto" only when it was started for auto:
        a server started for --engine torch does not answer for what auto would choose), at the precision it runs (and
        "auto" likewise)."""
        names = {self.key, self.lm.name, *(alias for alias, repo in ALIASES.items() if repo == self.lm.name)}
        if self.lm.name == ALIASES[DEFAULT_MODEL]:
            names.add("")
        devices = {device, "auto", self.lm.device}
        engines = {self.engine, self.lm.engine.name}
        precisions = {self.precision, self.lm.engine.precision}  # auto's choice depends on the engine alone
        return {(name, each, precision, engine) for name in names for each in devices for precision in precisions
                for engine in engines}

    def serve(self, listener: socket.socket) -> None:
        """Accept connections until stopped or idle. Past MAX_CONNECTIONS open, the next ones wait in the listen
        backlog (their clients' connect has succeeded: they wait for a reply as for a queued request)."""
        listener.settimeout(POLL)
        while not self.stopping.is_set() and not self._idle():
            with self.changed:
                if self.connections >= MAX_CONNECTIONS:
                    self.changed.wait(POLL)
                    continue
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            self._count("connections", 1)
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def drain(self) -> None:
        """Before the process exits (taking its daemon threads with it), with the listener closed: decline what is
        queued, and let the request running finish and be answered, for up to DRAIN_WAIT. Past that it is cancelled
        at its next token (its client gets "the model server is stopping", exit 1) and has CANCEL_WAIT to say so."""
        self.stopping.set()
        with self.changed:
            if not self.changed.wait_for(lambda: self.answering == 0, DRAIN_WAIT):
                log.warning("a request still running after %g s is cancelled", DRAIN_WAIT)
                self.cancelling.set()
                self.changed.wait_for(lambda: self.answering == 0, CANCEL_WAIT)

    def _idle(self) -> bool:
        if self.idle_timeout <= 0:
            return False
        with self.state_lock:
            return self.busy == 0 and time.monotonic() - self.last_used >= self.idle_timeout

    def handle(self, conn: socket.socket) -> None:
        try:
            with conn, conn.makefile("rb") as reader:
                conn.settimeout(READ_TIMEOUT)
                try:
                    line = reader.readline(client.MAX_REQUEST + 1)
                except OSError:
                    return
                if not line:
                    return  # client.running() only checks that we accept
                self._count("answering", 1)
                try:
                    self.answer(line, conn)
                finally:
                    self._count("answering", -1)
        finally:
            self._count("connections", -1)

    def _count(self, name: str, step: int) -> None:
        with self.changed:
            setattr(self, name, getattr(self, name) + step)
            self.changed.notify_all()

    def answer(self, line: bytes, conn: socket.socket) -> None:
        conn.settimeout(WRITE_TIMEOUT)
        outbox = Outbox(lambda message: conn.sendall(json.dumps(message).encode() + b"\n"))

        def send(message: dict) -> None:
            if outbox.gone.is_set():  # it hung up or stopped reading: stop working for it
                raise Cancelled("the client went away")
            outbox.put(message)

        try:
            reply = self.dispatch(line, Client(conn, outbox.gone, send))
        except BadRequest as error:
            reply = {"error": str(error)}
        except Cancelled as error:
            log.info("cancelled a request: %s", error)
            reply = {"error": str(error)}
        except Declined:
            log.info("declined a request queued before the stop")
            reply = None
        except Exception as error:
            log.exception("request failed")
            reply = {"error": f"{type(error).__name__}: {first_line(error)}"}
        if reply is not None:
            outbox.put(reply)
        outbox.close(WRITE_TIMEOUT)
        if reply is _STOPPED:
            self.stopping.set()  # only now: the accept loop may exit as soon as it sees this

    def dispatch(self, line: bytes, asking: Client) -> dict:
        if len(line) > client.MAX_REQUEST:
            raise BadRequest(f"request longer than {client.MAX_REQUEST} bytes")
        try:
            request = json.loads(line)
        except (ValueError, RecursionError) as error:  # (nested too deeply for the parser)
            raise BadRequest(f"not a JSON request: {error}") from None
        if not isinstance(request, dict):
            raise BadRequest("a request is a JSON object")
        op = _field(request, "op", str)
        if op == "status":
            return self.status()
        if op == "stop":
            log.info("stop requested")
            return _STOPPED
        if op == "complete":
            return self.complete(request, asking)
        if op == "suggest":
            return self.suggest(request, asking)
        raise BadRequest(f"unknown op {op!r} (complete, suggest, status or stop)")

    def status(self) -> dict:
        with self.state_lock:
            requests = self.requests
        return {"model": self.lm.name, "requested": self.key, "device": self.lm.device,
                "precision": self.lm.engine.precision, "engine": self.lm.engine.name,
                "pid": os.getpid(), "since": self.since, "requests": requests, "idle_timeout": self.idle_timeout}

    @contextlib.contextmanager
    def _working(self, send):
        """Hold the model; counts as activity for the idle clock from the moment the request queues. What the
        server said while loading the model (a fallback to the starter, say) goes to the first user it serves."""
        with self.state_lock:
            self.busy += 1
        try:
            with self.model_lock:
                if self.stopping.is_set():  # queued behind the last request before a stop
                    raise Declined
                with self.state_lock:
                    self.requests += 1
                    said, self.load_notices = self.load_notices, []
                for message in said:
                    send({"notice": message})
                yield
        finally:
            with self.state_lock:
                self.busy -= 1
                self.last_used = time.monotonic()

    def complete(self, request: dict, asking: Client) -> dict:
        prompt = _field(request, "prompt", str)
        params = parse_params(_field(request, "settings", dict, {}))
        if not prompt:
            raise BadRequest("the prompt is empty")

        with self._working(asking.send), terminal.notices_to(lambda message: asking.send({"notice": message})):
            done = complete(self.lm, prompt, params, lambda piece: asking.send({"piece": piece}),
                            lambda logits, token, allowed: self._check(asking))  # every token, between pieces too
        return {"done": record(done, self.lm.name, params, self.lm.engine.name)}

    def _check(self, asking: Client) -> None:
        """Stop the work in progress if its client hung up (Ctrl-C, say) or stopped reading for WRITE_TIMEOUT, or a
        stop has waited DRAIN_WAIT for it."""
        if self.cancelling.is_set():
            raise Cancelled("the model server is stopping")
        if asking.gone.is_set() or hung_up(asking.conn):
            raise Cancelled("the client went away")

    def suggest(self, request: dict, asking: Client) -> dict:
        from autocomplete.text.suggest import KEYSTROKE_READS, suggest  # loads numpy

        prefix = _field(request, "prefix", str)
        reads = KEYSTROKE_READS if _field(request, "keystroke", bool, False) else None
        params = parse_params(_field(request, "settings", dict, {}))
        n, words = _field(request, "n", int, 5), _field(request, "words", int, 3)
        if not prefix:
            raise BadRequest("the prefix is empty")
        if n < 1 or words < 1:
            raise BadRequest("n and words must be >= 1")
        with self._working(asking.send), terminal.notices_to(lambda message: asking.send({"notice": message})):
            found = suggest(self.lm, prefix, params, n, words, check=lambda: self._check(asking), reads=reads)
        return {**found.wire(), "model": self.lm.name, "engine": self.lm.engine.name,
                "style": frames.resolve(params.style, prefix)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autocomplete.serve.server",
                                     description="Keep a model loaded and serve completions on a Unix socket.")
    parser.add_argument("--model", default=None, help="model name as the CLI takes it (default: the default model)")
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--engine", default="auto", choices=ENGINES)
    parser.add_argument("--idle-timeout", type=float, default=Settings().idle_timeout, metavar="SECONDS",
                        help="exit after this long without a request (0 = never)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sys.stdout = sys.stderr  # detached, stdout is nowhere: a stray print belongs in the log
    try:
        where = (args.model, args.device, args.precision, args.engine)
        path, log_file = client.socket_path(*where), client.log_path(*where)
        log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # 0600 from the start
    except (UserError, OSError) as error:
        print(f"autocomplete server: {error}", file=sys.stderr)
        return 1
    fatal = _log_to(log_fd)
    try:  # a bad value is fatal, as in the CLI (which refuses it before it would start us)
        debug = env_flag("AUTOCOMPLETE_DEBUG")
    except UserError as error:
        return fatal(str(error))
    if not debug:
        warnings.simplefilter("ignore")  # library deprecation notes would only fill the log
    shown = args.model or "the default model"
    if client.running(*where):
        return fatal(f"a server for {shown} is already running ({path})")
    if not _lock(log_fd):
        return fatal(f"another server for {shown} is starting or stopping")
    if os.fstat(log_fd).st_size > 1 << 20:
        os.ftruncate(log_fd, 0)  # the log only matters for the latest runs

    signal.signal(signal.SIGTERM, _terminate)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # stale: nothing answered on it, and we hold the lock
    try:
        listener, inode = _listen(path)
    except OSError as error:
        return fatal(f"could not listen on {path}: {error}")

    server, links = None, []
    try:
        try:
            load_notices = []
            with terminal.notices_to(load_notices.append):
                lm = models.load(*where)
            for message in load_notices:
                log.info("%s", message)
        except UserError as error:
            return fatal(str(error))
        except Exception as error:
            log.exception("loading failed")
            return fatal(f"could not load {shown}: {type(error).__name__}: {first_line(error)}")
        server = Server(lm, args.model or "", args.idle_timeout, load_notices, args.precision, args.engine)
        links = _link(path, server.answers_to(args.device))
        log.info("serving %s on %s (pid %d, device %s, %s, %s)", lm.name, path, os.getpid(), lm.device,
                 lm.engine.precision, lm.engine.name)
        server.serve(listener)
        log.info("stopping: %s", "stop requested" if server.stopping.is_set() else "idle timeout")
    except KeyboardInterrupt:
        log.info("stopping: interrupted")
    finally:
        _unlink_ours(links, path, inode)
        listener.close()
        fcntl.flock(log_fd, fcntl.LOCK_UN)  # after the socket: a new server may start from here on
        if server is not None:
            server.drain()
    return 0


def _log_to(log_fd: int):
    """The log on log_fd (owner-only); returns fatal(message), which says it on stderr and in the log, and is 1."""
    os.fchmod(log_fd, 0o600)
    handler = logging.StreamHandler(os.fdopen(log_fd, "a", buffering=1, encoding="utf-8"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:  # when client.start() runs us, stderr already is the log: don't write fatal lines there twice
        to_log = not os.path.samestat(os.fstat(2), os.fstat(log_fd))
    except OSError:
        to_log = True

    def fatal(message: str) -> int:
        print(f"autocomplete server: {message}", file=sys.stderr, flush=True)
        if to_log:
            log.error(message)
        return 1

    return fatal


def _lock(log_fd: int) -> bool:
    """The lock on the log file, held for our lifetime: it makes check-unlink-bind safe against a second server
    starting at the same moment. False if another holds it past LOCK_WAIT."""
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(log_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


def _listen(path) -> tuple[socket.socket, int]:
    """A socket listening on path, 0600 the moment it exists, and its inode (to unlink only ours at the end).
    Bound before the model loads, so a racing client.start() connects here and waits instead of failing."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The umask only around bind: the model loader makes cache directories, which need their x bits. (No other
    # threads run yet, so the process-wide umask is ours.)
    umask = os.umask(0o177)
    try:
        listener.bind(os.fspath(path))
        listener.listen(64)
        return listener, os.stat(path).st_ino
    except OSError:
        listener.close()
        raise
    finally:
        os.umask(umask)


def _unlink_ours(links: list, path, inode: int) -> None:
    """The links and the socket, only those still ours (a new server may have replaced them)."""
    for link in links:
        with contextlib.suppress(OSError):
            if os.readlink(link) == path.name:
                link.unlink()
    with contextlib.suppress(OSError):
        if os.stat(path).st_ino == inode:
            path.unlink()


def _link(path, wanted: set[tuple[str, str, str, str]]) -> list:
    """Make each wanted name's .ready link point at our socket (replacing a dead server's, not a live one's); the
    links made."""
    made = []
    for where in sorted(wanted):
        link = client.ready_path(*where)
        if client.listening(link):
            continue
        temporary = link.with_name(f"{link.stem}.{os.getpid()}.tmp")
        try:
            os.symlink(path.name, temporary)  # relative: the link and the socket share the runtime dir
            os.replace(temporary, link)
        except OSError as error:
            log.warning("could not link %s: %s", link, error)
            with contextlib.suppress(OSError):
                temporary.unlink()
            continue
        made.append(link)
    return made


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # unwinds main() through its clean-up, like Ctrl-C


if __name__ == "__main__":
    sys.exit(main())
