"""--api URL: a serving engine's OpenAI-compatible /v1/completions as the model (vLLM, llama.cpp's llama-server,
TGI, ollama, `transformers serve`). This path imports neither torch nor transformers: a call costs Python's start
and an HTTP request.

HTTP comes from the standard library (urllib): it honours the proxy variables and the system's certificates, and
an SSE stream is lines of `data: {json}`. The `openai` package and `httpx` cost more to import than the rest of
the call (see the benchmark in docs/speed.md); the `openai` package stays the reference for what a stream means, in the
tests.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

from autocomplete import terminal
from autocomplete.errors import UsageError, UserError, first_line

KEY_VARIABLE = "AUTOCOMPLETE_API_KEY"  # never an option: a command line shows in every process listing
MAX_LINE = 1 << 20  # bytes of one line of a stream: an event is a few hundred
TIMEOUT = 60.0  # longest silence: connecting, waiting for the first token, or between two events
# Sent where the engine takes them, dropped (once, with a notice if it matters) where it refuses them:
# top_k (vLLM, llama.cpp, TGI take it; the OpenAI schema has no such field), llama.cpp's repeat penalty,
# which is 1.1 by default there, so temperature 0 would not be greedy, and stream_options, without which
# OpenAI's schema sends no token count in a stream (transformers serve 5.25 follows it; 5.24 sent one anyway).
EXTRAS = ("top_k", "repeat_penalty", "stream_options")
MAX_TIMEOUT = 86400.0  # a day: beyond it (inf, say) the socket layer can't represent the wait


class Api:
    """One OpenAI-compatible server: its base URL (".../v1") and the key, if any. The key goes to that origin
    (scheme, host, port) only: a redirect elsewhere is refused, not followed (see _Redirects)."""

    def __init__(self, base: str, key: str | None = None, timeout: float | None = None):
        base = base.strip().rstrip("/")
        try:
            parts = urllib.parse.urlsplit(base)
            parts.port  # noqa: B018 - raises ValueError for a port that isn't a number
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--api {_without_credentials(base)!r} is not an http(s) URL "
                             "(for example http://localhost:8000/v1)")
        if parts.username is not None or parts.password is not None:
            # Never echoed: the URL holds a secret. Shell history and process listings show it too.
            raise UsageError(f"--api URL holds a user name or password; give the key in {KEY_VARIABLE} instead")
        self.base, self.host = base, parts.hostname
        self.timeout = timeout if timeout is not None else _timeout()
        self.key = _checked_key(key if key is not None else os.environ.get(KEY_VARIABLE))
        self.refused: set[str] = set()  # extra fields this server turned down
        self._opener = urllib.request.build_opener(_Redirects(self))
        if self.key and parts.scheme == "http" and not _local(parts.hostname):
            terminal.notice_once(f"api-key-over-http-{parts.hostname}",
                                 f"Warning: {KEY_VARIABLE} goes to {parts.hostname} over plain http, readable on "
                                 "the way; use https (said once for this host).")

    def models(self) -> list[str]:
        with self._open("GET", "/models") as response:
            listing = _json(response.read(), self.base)
        try:
            return [entry["id"] for entry in listing["data"]]
        except (KeyError, TypeError):
            raise UserError(f"{self.base}/models did not list models the OpenAI way") from None

    def model(self, named: str | None) -> str:
        """The model to ask for: the one named (-m), else the server's only one."""
        if named:
            return named
        served = self.models()
        if len(served) == 1:
            return served[0]
        if not served:
            raise UserError(f"{self.base} serves no models")
        raise UsageError(f"{self.base} serves {len(served)} models; choose one with -m: {', '.join(served)}")

    def stream(self, body: dict) -> Iterator[dict]:
        """POST /completions with stream on; yields each event's JSON. The connection closes when the caller stops
        iterating (a stop rule met, Ctrl-C), which ends the generation on the server."""
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        with self._post_dropping_refused("/completions", body) as response:
            finished = False
            fed = time.monotonic()  # when data last came: a server that only keeps the line alive times out too
            while True:
                try:
                    raw = response.readline(MAX_LINE + 1)
                except (OSError, ValueError, http.client.HTTPException):
                    raw = None
                if not raw:
                    if raw is None or not finished:
                        raise UserError(f"the API server at {self.base} closed the connection mid-stream")
                    return
                if len(raw) > MAX_LINE:
                    raise UserError(f"the API server at {self.base} sent a line longer than {MAX_LINE >> 20} MiB")
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if not line or line.startswith((":", "event:", "id:", "retry:")):
                    if time.monotonic() - fed > self.timeout:
                        raise UserError(f"the API server at {self.base} sent no data for {self.timeout:g} s (only "
                                        "keep-alives); AUTOCOMPLETE_API_TIMEOUT sets how long to wait")
                    continue  # a blank line ends an event; the rest are SSE fields we don't need
                fed = time.monotonic()
                if not line.startswith("data:"):
                    raise UserError(f"the API server sent something that is not an SSE event: {line[:80]!r}")
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                event = _json(data.encode(), self.base)
                if not isinstance(event, dict):
                    raise UserError(f"the API server sent an event that is not a JSON object: {data[:80]!r}")
                _shaped(event, self.base)
                if "error" in event:
                    raise UserError(f"the API server failed mid-stream: {_message(event)}")
                finished = finished or any(c.get("finish_reason") for c in event.get("choices") or [])
                yield event

    def request(self, path: str, body: dict) -> dict:
        """POST without streaming; the reply's JSON."""
        with self._post_dropping_refused(path, body) as response:
            try:
                data = response.read()
            except (OSError, http.client.HTTPException):
                raise UserError(f"the API server at {self.base} closed the connection mid-reply") from None
        reply = _json(data, self.base)
        if not isinstance(reply, dict):
            raise UserError(f"the API server at {self.base} sent JSON that is not an object")
        return _shaped(reply, self.base)

    def _post_dropping_refused(self, path: str, body: dict):
        """POST, leaving out the extra fields this server refuses: a 400/422 naming one of them is retried
        without it (and said once, for top-k, which changes what is sampled)."""
        while True:
            sent = {k: v for k, v in body.items() if k not in self.refused}
            try:
                return self._open("POST", path, sent)
            except _Refused as refused:
                named = {field for field in EXTRAS if field in sent and field in refused.message}
                if not named:
                    raise UserError(refused.line) from None
                self.refused |= named
                if "top_k" in named and sent["top_k"] and sent.get("temperature"):  # it would have mattered
                    netloc = urllib.parse.urlsplit(self.base).netloc
                    terminal.notice_once(f"api-no-top-k-{netloc}", f"The server at {netloc} does not take top-k "
                                         f"({refused.status}): it samples without it (said once).")

    def _open(self, method: str, path: str, body: dict | None = None):
        headers = {"Accept": "text/event-stream, application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        self.authorize(request)
        try:
            return self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            raise _http_error(error, self.base + path) from None
        except urllib.error.URLError as error:
            raise UserError(self._unreachable(error.reason)) from None
        except (TimeoutError, OSError) as error:
            raise UserError(self._unreachable(error)) from None
        except http.client.HTTPException as error:  # a status line or headers that aren't HTTP
            raise UserError(f"the API server at {self.base} answered with something that is not HTTP "
                            f"({type(error).__name__})") from None

    def authorize(self, request: urllib.request.Request) -> None:
        """The key, as a header urllib never copies onto a redirected request (_Redirects adds it back where the
        redirect stays on this origin)."""
        if self.key:
            request.add_unredirected_header("Authorization", f"Bearer {self.key}")

    def _unreachable(self, reason) -> str:
        import socket
        import ssl

        if isinstance(reason, ConnectionRefusedError):
            return f"nothing answers at {self.base} (connection refused): is the server running?"
        if isinstance(reason, socket.gaierror):
            return f"can't find the host {self.host!r} of --api {self.base} (DNS)"
        if isinstance(reason, ssl.SSLError):
            return f"TLS with {self.host} failed: {getattr(reason, 'verify_message', None) or reason.reason or reason}"
        if isinstance(reason, TimeoutError):
            return f"the API server at {self.base} did not answer within {self.timeout:g} s"
        return f"can't reach the API server at {self.base}: {reason}"


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Redirects are followed on the same origin only (a trailing-slash fix, a path moved), or from http to https
    on the same host. One to another host, port or scheme is refused with one line: it would take the request (and
    the key, which urllib's own handler copies along) somewhere the user never named. 307 and 308 keep the method
    and body, as the standard says; urllib alone would refuse them for a POST."""

    def __init__(self, api: Api):
        self.api = api

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not _same_origin(self.api.base, newurl):
            fp.close()
            raise UserError(f"the API server at {self.api.base} redirected to {_without_credentials(newurl)}, "
                            "another origin; not following it (use that URL as --api if you trust it)")
        if code in (307, 308):
            new = urllib.request.Request(newurl, data=req.data, headers=dict(req.headers),
                                         method=req.get_method())
        else:
            new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            new.remove_header("Authorization")
            self.api.authorize(new)
        return new


def _same_origin(base: str, url: str) -> bool:
    a, b = urllib.parse.urlsplit(base), urllib.parse.urlsplit(url)
    try:
        if (a.hostname or "").lower() != (b.hostname or "").lower() or b.username or b.password:
            return False
        if a.scheme == b.scheme:
            return a.port == b.port
        # An upgrade (the key no longer travels in the clear) of the same service: on the same port, or from the
        # default port to the default port. Another port may be another service.
        return a.scheme == "http" and b.scheme == "https" and (a.port == b.port or a.port in (None, 80)
                                                               and b.port in (None, 443))
    except ValueError:  # a port that is not a number
        return False


def _without_credentials(url: str) -> str:
    """The URL as shown in messages: any user:password@ left out."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "(an invalid URL)"
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc="…@" + parts.netloc.rpartition("@")[2]))


def _checked_key(key: str | None) -> str | None:
    """The key as an HTTP header can carry it. Surrounding whitespace (a newline from `$(cat file)`) is dropped;
    a control or non-ASCII character inside is an error that never shows the key."""
    key = (key or "").strip()
    if not key:
        return None
    if not key.isascii() or not key.isprintable():
        raise UsageError(f"{KEY_VARIABLE} holds a line break or another character an HTTP header can't carry; "
                         "set it to the key alone")
    return key


class _Refused(UserError):
    """A 400 or 422: a field the server doesn't take, perhaps."""

    def __init__(self, status: int, message: str, line: str):
        super().__init__(line)
        self.status, self.message, self.line = status, message, line


def _http_error(error, url: str) -> UserError:
    status = error.code
    try:
        detail = _message(json.loads(error.read() or b"{}"))
    except (ValueError, OSError):
        detail = ""
    detail = detail or error.reason or ""
    said = f" ({status}: {detail})" if detail else f" ({status})"
    if status in (401, 403):
        return UserError(f"the API server refused the request{said}; set {KEY_VARIABLE} to a key it accepts")
    if status == 404:
        return UserError(f"not found at {url}{said}: check --api (it ends in /v1) and the model name (-m)")
    if status == 429:
        return UserError(f"the API server is busy or rate-limiting{said}; try again in a moment")
    if status in (400, 422):
        return _Refused(status, detail, f"the API server rejected the request{said}")
    if status >= 500:
        return UserError(f"the API server failed{said}")
    return UserError(f"the API server answered {status}{said}")


def _message(reply) -> str:
    """The error message in the shapes engines use: {"error": {"message"}}, {"error": "..."}, {"detail": ...}."""
    if isinstance(reply, dict):
        for key in ("error", "detail", "message"):
            if key in reply:
                return _message(reply[key])
        return ""
    if isinstance(reply, list) and reply:
        return _message(reply[0]) or str(reply[0])
    return first_line(reply)


def _shaped(reply: dict, base: str) -> dict:
    """A completion's reply or event, its parts of the shape the OpenAI API gives them: choices a list of objects,
    usage an object (each may be absent or null). The rest is read with care where it is used."""
    choices, usage = reply.get("choices"), reply.get("usage")
    if choices is not None and not (isinstance(choices, list) and all(isinstance(c, dict) for c in choices)):
        raise UserError(f"the API server at {base} sent choices that are not a list of objects")
    if usage is not None and not isinstance(usage, dict):
        raise UserError(f"the API server at {base} sent a usage that is not an object")
    return reply


def _json(data: bytes, base: str):
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # (nested too deeply for the parser)
        raise UserError(f"the API server at {base} sent something that is not JSON: {data[:80]!r}") from None


def _timeout() -> float:
    """AUTOCOMPLETE_API_TIMEOUT seconds, else TIMEOUT: a big model on a busy engine may need longer."""
    try:
        value = float(os.environ.get("AUTOCOMPLETE_API_TIMEOUT", TIMEOUT))
    except ValueError:
        raise UsageError("AUTOCOMPLETE_API_TIMEOUT must be a number of seconds") from None
    if not (0 < value <= MAX_TIMEOUT):  # NaN and inf too
        raise UsageError(f"AUTOCOMPLETE_API_TIMEOUT must be more than 0 and at most {MAX_TIMEOUT:g} seconds")
    return value


def _local(host: str) -> bool:
    """Whether traffic to `host` stays on this machine: localhost, *.localhost (RFC 6761) or a loopback address,
    never a name that merely starts like one (127.evil.example)."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
