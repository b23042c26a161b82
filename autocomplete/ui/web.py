"""--web: a search page, the OpenSearch suggest endpoint and the next-token view, on 127.0.0.1, with the model loaded
once (in process, or the --api server's).

    /                the page (autocomplete/ui/page: plain HTML, CSS and JavaScript; no build step, nothing fetched)
    /suggest?q=&n=   OpenSearch Suggestions: [q, [q + completion, ...], [probability, ...], [page URL, ...]]
                     (&keystroke=1: one of a run of keystrokes, bounded as the REPL's lists are)
    /opensearch.xml  the description document pointing at both, for a browser to add as a search engine
    /complete?q=     Server-Sent Events: {"piece"} data, then `event: done` with the --json record
    /explain?q=      the --explain --json record of the next step: the token after the typed word, finished
    /info            the model, its engine and the settings the page starts from
/complete and /explain take t, k, p, n (--max-tokens), seed and style, each checked as its option is.

The standard library's ThreadingHTTPServer, not Starlette + uvicorn: its import costs 28 ms against 150, it answers in
0.34 ms against 0.76 (bench/run.py --only web, the AVX2 EPYC: docs/speed.md), and it needs nothing installed. HTTP/1.1
keep-alive with TCP_NODELAY: without it, Nagle's algorithm and delayed ACKs add 44 ms to every answer on a kept-alive
connection.

Safe by default: loopback only; a Host other than 127.0.0.1:PORT or localhost:PORT is refused (DNS rebinding: a page
elsewhere can't read this one through a name it points here); a request a browser says comes from another site is
refused before it counts; GET and HEAD only; queries of at most MAX_QUERY characters; at most RATE requests a second
(BURST at once). Each error is one line in the log (stderr) and
{"error": one line} to the client, never a traceback.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, quote, urlsplit
from xml.sax.saxutils import escape

from autocomplete import terminal
from autocomplete.cancel import Cancelled
from autocomplete.backend import backends
from autocomplete.backend.backends import InProcess
from autocomplete.errors import UserError, first_line
from autocomplete.serve.outbox import Outbox
from autocomplete.serve.server import hung_up
from autocomplete.settings import Settings, check
from autocomplete.terminal import visible
from autocomplete.text.records import record
from autocomplete.text.explain import next_step

# Characters: a search box's query, not a document. At most 4 bytes each in UTF-8, so at most 1,000 tokens for a
# byte-level tokenizer (a bound in characters alone let four-byte ones become three tokens each).
MAX_QUERY = 250
MAX_SUGGESTIONS = 10
STOP_WAIT = 10.0  # seconds Ctrl-C waits for a running forward to end
PAGE_TOP = 64  # candidates /explain sends by default: the page's top-k slider goes this far
MAX_TOP = 256
RATE, BURST = 30.0, 60  # requests a second: a fast typist with the page's debounce makes a few
PAGE = {"/": ("index.html", "text/html"), "/page.js": ("page.js", "text/javascript"),
        "/page.css": ("page.css", "text/css")}
# What a request may set, with the option it is checked as, and how the text becomes a value.
PARAMETERS = {"t": ("temperature", float), "k": ("top_k", int), "p": ("top_p", float), "n": ("max_tokens", int),
              "seed": ("seed", int), "style": ("style", str)}
# Nothing runs on the page but its own script; it can't be framed.
SECURITY_HEADERS = {"Content-Security-Policy": "default-src 'self'; object-src 'none'; base-uri 'none'; "
                                               "frame-ancestors 'none'",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


class Refused(Exception):
    """A request answered with an error: its status and the one line said."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class Local:
    """The model in this process: one request uses it at a time (the rest wait their turn), and one whose client
    hangs up stops at its next forward."""

    def __init__(self, lm):
        self.backend = InProcess(lm)
        self.lm, self.name, self.engine, self.approximate = lm, lm.name, lm.engine.name, False
        self.lock = threading.Lock()

    def suggest(self, q: str, settings: Settings, n: int, check, keystroke: bool):
        from autocomplete.text.suggest import KEYSTROKE_READS  # loads numpy

        with self.lock:
            check()  # it may have hung up while it waited for the model
            return self.backend.suggest(q, settings.params(), n, settings.words, check,
                                        KEYSTROKE_READS if keystroke else None)

    def complete(self, q: str, settings: Settings, on_piece, check) -> dict:
        params = settings.params()
        with self.lock:
            check()
            done = self.backend.complete(q, params, on_piece, check)
        return record(done, self.name, params, self.engine)

    def explain(self, q: str, settings: Settings, top: int, check) -> dict:
        with self.lock:
            check()
            return next_step(self.lm, q, settings.params(), top, check)


class OverApi:
    """An OpenAI-compatible server (--api): it queues and batches requests itself, so they go at once. Its odds are
    its top alternatives, renormalised (approximate: the page says so)."""

    def __init__(self, backend: backends.OverApi):
        self.backend, self.name, self.engine, self.approximate = backend, backend.name, None, True

    def suggest(self, q: str, settings: Settings, n: int, check, keystroke: bool):
        return self.backend.suggest(q, settings.params(), n, settings.words, check, None)

    def complete(self, q: str, settings: Settings, on_piece, check) -> dict:
        params = settings.params()
        return record(self.backend.complete(q, params, on_piece, check), self.name, params)

    def explain(self, q: str, settings: Settings, top: int, check) -> dict:
        from autocomplete.text import remote_explain  # loads numpy

        return remote_explain.next_step(self.backend, q, settings.params(), top)


class Bucket:
    """A token bucket: `rate` requests a second on average, `burst` at once."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst, self.tokens, self.at = rate, burst, float(burst), time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True


class Site(ThreadingHTTPServer):
    daemon_threads = True  # Ctrl-C doesn't wait for a page's open stream

    def __init__(self, port: int, settings: Settings):
        try:
            super().__init__(("127.0.0.1", port), Handler)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise UserError(f"port {port} on 127.0.0.1 is in use (another autocomplete --web?): choose another "
                                "with --port N") from None
            raise UserError(f"can't listen on 127.0.0.1:{port}: {first_line(error)}") from None
        self.port = self.server_address[1]
        self.hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        self.origins = {f"http://{host}" for host in self.hosts}
        self.settings, self.answers, self.bucket = settings, None, Bucket(RATE, BURST)
        self.stopping = threading.Event()  # Ctrl-C: every request still running ends at its next check

    def handle_error(self, request, client_address) -> None:
        """What escaped a handler (it answers every error itself, so a bug): one line, not the library's traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return  # a client that reset its connection, or went quiet mid-request: nothing went wrong here
        said = f"autocomplete --web: unexpected {type(error).__name__}: {first_line(error)}"
        sys.stderr.write(visible(said) + "\n")

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def info(self) -> dict:
        s = self.settings
        api = self.answers.backend.api.host if s.api else None
        return {"model": self.answers.name, "engine": self.answers.engine, "api": api,
                "approximate": self.answers.approximate, "top": PAGE_TOP, "max_query": MAX_QUERY,
                "settings": {"temperature": s.temperature, "top_k": s.top_k, "top_p": s.top_p,
                             "max_tokens": s.max_tokens, "style": s.style, "words": s.words}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a page's keystrokes reuse one connection
    disable_nagle_algorithm = True  # see the module
    server_version = "autocomplete"
    sys_version = ""
    server: Site
    body = True  # False for HEAD: the headers alone
    timeout = 60  # seconds a read or write may block: a client that stops reading must not hold the model

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _refuse_method(self) -> None:
        self.body, self.begun = True, False
        self._error(Refused(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not served here: GET only"),
                    extra={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    def _answer(self, body: bool) -> None:
        self.body, self.begun = body, False
        try:
            if self.headers.get("Host") not in self.server.hosts:
                raise Refused(HTTPStatus.FORBIDDEN, f"Host {self.headers.get('Host')!r} is not this server's "
                              f"(use {self.server.url()})")
            # A page on another origin may send requests here (no-cors fetches, images, forms) though it can't read
            # the answers: refused before they count against the rate or take the model. Browsers say where a
            # request comes from; other clients send neither header.
            site, origin = self.headers.get("Sec-Fetch-Site"), self.headers.get("Origin")
            if site not in (None, "same-origin", "none") or origin is not None and origin not in self.server.origins:
                raise Refused(HTTPStatus.FORBIDDEN, f"a request from another site ({origin or site}) is not served")
            if self.headers.get_all("Content-Length", ["0"]) != ["0"] or "Transfer-Encoding" in self.headers:
                raise Refused(HTTPStatus.BAD_REQUEST, "a request here has no body")
            if not self.server.bucket.take():
                raise Refused(HTTPStatus.TOO_MANY_REQUESTS, f"too many requests: at most {RATE:g} a second")
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            route = ROUTES.get(url.path)
            if route is None:
                raise Refused(HTTPStatus.NOT_FOUND, f"nothing at {url.path}")
            route(self, query)
        except Refused as error:
            self._error(error)
        except (Cancelled, OSError):  # it hung up, or stopped reading for longer than `timeout`
            self.close_connection = True
        except UserError as error:  # the model or the --api server failed this request: said, and the next one runs
            failed = HTTPStatus.BAD_GATEWAY if self.server.settings.api else HTTPStatus.INTERNAL_SERVER_ERROR
            self._error(Refused(failed, str(error)))
        except Exception as error:
            self._error(Refused(HTTPStatus.INTERNAL_SERVER_ERROR, f"unexpected {type(error).__name__}: "
                                f"{first_line(error)}"))

    # The routes

    def page(self, query: dict) -> None:
        name, kind = PAGE[urlsplit(self.path).path]
        data = resources.files("autocomplete.ui").joinpath("page", name).read_bytes()
        self._send(HTTPStatus.OK, f"{kind}; charset=utf-8", data, {"Cache-Control": "no-cache"})

    def info(self, query: dict) -> None:
        self._json(self.server.info())

    def suggest(self, query: dict) -> None:
        q = self._text(query, "q", empty=True)
        n = self._number(query, "n", 5, 1, MAX_SUGGESTIONS)
        if not q.strip():
            found = []
        else:
            # The page asks at every keystroke (keystroke=1), so its lists may stop at the keystroke bound: the
            # rows earlier keystrokes read are free. Any other client asks once, and is searched in full.
            keystroke = query.get("keystroke") == "1"
            found = self.server.answers.suggest(q, self.server.settings, n, self._check, keystroke)
        full = [q + s.completion for s in found]
        self._json([q, full, [f"{s.probability:.1%}" for s in found],
                    [self.server.url("/?q=" + quote(text)) for text in full]],
                   "application/x-suggestions+json; charset=utf-8")

    def complete(self, query: dict) -> None:
        q, settings = self._text(query, "q"), self._settings(query)
        self.send_response(HTTPStatus.OK)
        self._headers("text/event-stream; charset=utf-8", {"Cache-Control": "no-store", "Connection": "close"})
        self.close_connection = True  # the stream's end is the connection's
        if not self.body:
            return

        # The events are written by a thread of their own: the model is never held while a client that stopped
        # reading (a suspended one) blocks a write. One that can't be written to stops the completion.
        def write(event: tuple) -> None:
            data, name = event
            self.wfile.write(((f"event: {name}\n" if name else "") + f"data: {dumps(data)}\n\n").encode())
            self.wfile.flush()

        events = Outbox(write)

        def check() -> None:
            if events.gone.is_set():
                raise Cancelled
            self._check()

        try:
            done = self.server.answers.complete(q, settings, lambda piece: events.put(({"piece": piece}, None)),
                                                check)
            events.put((done, "done"))
        except (Cancelled, OSError):
            raise
        except Exception as error:  # the stream has begun: the error is an event of it
            said = str(error) if isinstance(error, UserError) else f"unexpected {type(error).__name__}: " \
                                                                    f"{first_line(error)}"
            self._log(said)
            events.put(({"error": said}, "error"))
        finally:
            events.close(self.timeout)  # a write blocks at most `timeout`: then the connection goes

    def explain(self, query: dict) -> None:
        q, settings = self._text(query, "q"), self._settings(query)
        top = self._number(query, "top", PAGE_TOP, 1, MAX_TOP)
        self._json(self.server.answers.explain(q, settings, top, self._check))

    def opensearch(self, query: dict) -> None:
        url = self.server.url()
        document = f"""<?xml version="1.0" encoding="UTF-8"?>
<OpenSearchDescription xmlns="http://a9.com/-/spec/opensearch/1.1/">
  <ShortName>autocomplete</ShortName>
  <Description>{escape(f"Query suggestions from {self.server.answers.name}, on this machine")}</Description>
  <InputEncoding>UTF-8</InputEncoding>
  <Url type="text/html" method="get" template="{url}?q={{searchTerms}}"/>
  <Url type="application/x-suggestions+json" method="get" template="{url}suggest?q={{searchTerms}}"/>
</OpenSearchDescription>
"""
        self._send(HTTPStatus.OK, "application/opensearchdescription+xml; charset=utf-8", document.encode())

    # Reading a request

    def _text(self, query: dict, name: str, empty: bool = False) -> str:
        text = query.get(name, "")
        if not text and not empty:
            raise Refused(HTTPStatus.BAD_REQUEST, f"give the text as ?{name}=")
        if len(text) > MAX_QUERY:
            raise Refused(HTTPStatus.REQUEST_URI_TOO_LONG, f"{name} is longer than {MAX_QUERY} characters")
        if "\x00" in text:
            raise Refused(HTTPStatus.BAD_REQUEST, f"{name} holds a NUL character")
        return text

    def _number(self, query: dict, name: str, default: int, low: int, high: int) -> int:
        if name not in query:
            return default
        try:
            value = int(query[name])
        except ValueError:
            raise Refused(HTTPStatus.BAD_REQUEST, f"{name} must be a whole number, not {query[name]!r}") from None
        if not low <= value <= high:
            raise Refused(HTTPStatus.BAD_REQUEST, f"{name} must be {low}-{high}, not {value}")
        return value

    def _settings(self, query: dict) -> Settings:
        """The command line's settings, with what the request sets instead, checked as the options are."""
        changed = {}
        for key, (name, kind) in PARAMETERS.items():
            if key in query:
                try:
                    changed[name] = check(name, kind(query[key]))
                except ValueError as error:
                    raise Refused(HTTPStatus.BAD_REQUEST, f"{key}: {error}") from None
        return dataclasses.replace(self.server.settings, **changed)

    def _check(self) -> None:
        # Before an answer has begun, a client's end of input is taken as its hang-up (as nginx does): over TCP,
        # only a write tells a closed client from one that shut down its sending half.
        if self.server.stopping.is_set() or hung_up(self.connection, eof_is_gone=not self.begun):
            raise Cancelled

    # Answering

    def _json(self, value, kind: str = "application/json; charset=utf-8") -> None:
        self._send(HTTPStatus.OK, kind, dumps(value).encode())

    def _error(self, error: Refused, extra: dict | None = None) -> None:
        """One line in the log, and {"error"} to the client, on a connection then closed: what a refused request
        carried (a body) is never read as the next request. Once an answer has begun, only the log hears of it."""
        self._log(f"{error.status.value} {error}")
        self.close_connection = True
        if self.begun:
            return
        with_retry = {"Retry-After": "1"} if error.status == HTTPStatus.TOO_MANY_REQUESTS else {}
        try:
            self._send(error.status, "application/json; charset=utf-8",
                       dumps({"error": str(error)}).encode(),
                       {**with_retry, **(extra or {}), "Connection": "close"})
        except OSError:
            pass

    def _send(self, status: HTTPStatus, kind: str, data: bytes, extra: dict | None = None) -> None:
        self.send_response(status)
        self._headers(kind, {"Content-Length": str(len(data)), **(extra or {})})
        if self.body:
            self.wfile.write(data)

    def _headers(self, kind: str, extra: dict) -> None:
        self.begun = True
        self.send_header("Content-Type", kind)
        for name, value in {**SECURITY_HEADERS, **extra}.items():
            self.send_header(name, value)
        self.end_headers()

    def _log(self, line: str) -> None:
        command, path = getattr(self, "command", None), getattr(self, "path", None)
        where = f"{command} {urlsplit(path).path}" if command and path else "a malformed request"
        sys.stderr.write(visible(f"autocomplete --web: {where}: {line}")[:500] + "\n")
        sys.stderr.flush()

    def log_message(self, format: str, *args) -> None:
        """The standard library's own lines: only what it refuses itself (a malformed request line) says anything."""
        if not format.startswith(('"%s" %s', "Request timed out")):  # the access line; an idle kept-alive connection
            sys.stderr.write(visible(f"autocomplete --web: {format % args}")[:500] + "\n")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What the standard library refuses itself (a malformed request line, a header too long): one JSON line."""
        self.body, self.begun = getattr(self, "command", None) != "HEAD", False
        self._error(Refused(HTTPStatus(code), message or HTTPStatus(code).phrase))


def dumps(value) -> str:
    """JSON as JavaScript's JSON.parse takes it: a number that isn't finite (a server's logprob of -inf) is null."""
    def finite(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [finite(x) for x in v]
        return v

    return json.dumps(finite(value), ensure_ascii=False, allow_nan=False)


ROUTES = {"/": Handler.page, "/page.js": Handler.page, "/page.css": Handler.page, "/info": Handler.info,
          "/suggest": Handler.suggest, "/complete": Handler.complete, "/explain": Handler.explain,
          "/opensearch.xml": Handler.opensearch}


def serve(settings: Settings) -> int:
    """autocomplete --web: listen first (a busy port says so before any model loads), load, serve until Ctrl-C."""
    site = Site(settings.port, settings)
    try:
        if settings.api:
            site.answers = OverApi(backends.OverApi.connect(settings.api, settings.model))
        else:
            site.answers = Local(backends.loaded(settings))
            # the first forwards, the query frame's cache and the vocabulary's masks: before the first user
            site.answers.explain("warm up", settings, 1, lambda: None)
            site.answers.suggest("warm up", settings, 1, lambda: None, keystroke=True)
        where = f"{site.answers.name} on {site.answers.engine}" if site.answers.engine else \
            f"{site.answers.name} at {site.answers.backend.api.host}"
        print(visible(f"Serving {site.url()} ({where}); Ctrl-C stops it."), flush=True)
        terminal.notice(f"To add it to a browser as a search engine: {site.url('/opensearch.xml')} (docs/web.md).")
        site.serve_forever()
    except KeyboardInterrupt:
        # A request's forward may be running in its thread: the process must not end under it (ONNX Runtime's
        # threads, torn down mid-run, abort it). Each request stops at its next check; the model is held once
        # free, so none starts again.
        site.stopping.set()
        if isinstance(site.answers, Local) and not site.answers.lock.acquire(timeout=STOP_WAIT):
            sys.stderr.flush()
            os._exit(130)  # still running past the wait: leave without tearing anything down
        return 130
    finally:
        site.server_close()
    return 0
