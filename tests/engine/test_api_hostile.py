"""--api against servers that misbehave on purpose: redirects to another host (the key must not follow), escapes in
error texts and model ids (they must not reach the terminal raw), and odd keys, URLs and timeouts. Real processes:
the CLI as installed, HTTP servers on loopback addresses (127.0.0.1 and 127.0.0.2, another host to the client)."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from http.server import ThreadingHTTPServer

import pytest

from stand_in import JsonHandler
from test_api import one_error

KEY = "sk-test-0123456789"
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\u202eevil"  # a title change, a screen clear, a right-to-left override


@contextmanager
def http_server(host: str, answer: Callable[[JsonHandler], None]):
    """A server on host (a loopback address) whose every GET and POST is answered by answer(handler); yields
    (base URL ".../v1", the requests it received as (method, path, headers))."""
    seen: list[tuple[str, str, dict]] = []

    class Handler(JsonHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.body = self.rfile.read(length) if length else b""
            seen.append((self.command, self.path, dict(self.headers)))
            answer(self)

        do_GET = do_POST = _any

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()


def stream_head(handler: JsonHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Connection", "close")
    handler.end_headers()


def stream_words(handler: JsonHandler, *words: str) -> None:
    stream_head(handler)
    for i, word in enumerate(words):
        choice = {"index": 0, "text": word, **({"finish_reason": "stop"} if i == len(words) - 1 else {})}
        handler.wfile.write(f"data: {json.dumps({'choices': [choice]})}\n\n".encode())
    handler.wfile.write(b"data: [DONE]\n\n")


def models(handler: JsonHandler, *ids: str) -> bool:
    if handler.path == "/v1/models":
        handler.reply(200, {"object": "list", "data": [{"id": model} for model in ids]})
        return True
    return False


# --- the key goes where it was meant to go ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_to_another_host_is_refused_and_the_key_stays_home(cli, status):
    with http_server("127.0.0.2", lambda h: h.reply(200, {"data": [{"id": "m"}]})) as (elsewhere, received):
        def redirect(handler):
            handler.reply(status, {}, {"Location": elsewhere + handler.path.removeprefix("/v1")})

        with http_server("127.0.0.1", redirect) as (base, _):
            result = cli("--api", base, "san", extra_env={"AUTOCOMPLETE_API_KEY": KEY})  # GET /models first
            posted = cli("--api", base, "-m", "m", "san", extra_env={"AUTOCOMPLETE_API_KEY": KEY})
    for run in (result, posted):
        line = one_error(run)
        assert "redirected to http://127.0.0.2" in line and "not following" in line
        assert KEY.encode() not in run.stdout + run.stderr
    assert received == []  # the other host was never asked, with or without the key


def test_an_upgrade_to_https_on_the_same_host_is_not_another_origin():
    from autocomplete.engine.api import _same_origin

    assert _same_origin("http://example.com/v1", "https://example.com/v2")
    assert _same_origin("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1/")
    assert not _same_origin("https://example.com/v1", "http://example.com/v1")  # a downgrade
    assert not _same_origin("http://127.0.0.1:8000/v1", "http://127.0.0.1:8001/v1")
    assert not _same_origin("http://example.com/v1", "http://example.com.evil.example/v1")
    assert not _same_origin("http://example.com/v1", "http://user@example.com/v1")
    assert _same_origin("http://example.com:8000/v1", "https://example.com:8000/v1")
    assert not _same_origin("http://example.com:8000/v1", "https://example.com:8443/v1")  # another service
    assert not _same_origin("http://example.com/v1", "https://example.com:8443/v1")


def test_a_redirect_on_the_same_origin_is_followed_with_the_key_and_the_body(cli):
    """A path moved (307 keeps the POST and its body): the key goes along, since the origin is the one named."""

    def answer(handler):
        if models(handler, "m"):
            return
        if handler.path == "/v1/completions":
            return handler.reply(307, {}, {"Location": "/v2/completions"})
        body = json.loads(handler.body)
        if handler.headers.get("Authorization") != f"Bearer {KEY}" or body.get("model") != "m":
            return handler.reply(401, {"error": {"message": "no key"}})
        stream_words(handler, " open", " sesame")

    with http_server("127.0.0.1", answer) as (base, received):
        result = cli("--api", base, "-m", "m", "--json", "san", extra_env={"AUTOCOMPLETE_API_KEY": KEY})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["completion"] == " open sesame"
    assert [path for _, path, _ in received] == ["/v1/completions", "/v2/completions"]


@pytest.mark.parametrize("key", ["abc\r\nX-Injected: 1", "abc\ndef", "ключ"])
def test_a_key_an_http_header_cannot_carry_is_one_line_and_never_shown(cli, key):
    with http_server("127.0.0.1", lambda h: h.reply(500, {})) as (base, received):
        result = cli("--api", base, "-m", "m", "san", extra_env={"AUTOCOMPLETE_API_KEY": key})
    err = result.stderr.decode()
    assert result.returncode == 2 and err.count("\n") == 1 and "AUTOCOMPLETE_API_KEY holds" in err
    assert key.split("\n")[0] not in err and received == []


def test_a_key_with_a_trailing_newline_is_the_key(cli):
    def answer(handler):
        if handler.headers.get("Authorization") != f"Bearer {KEY}":
            return handler.reply(401, {"error": {"message": "no key"}})
        stream_words(handler, " ok")

    with http_server("127.0.0.1", answer) as (base, _):
        result = cli("--api", base, "-m", "m", "san", extra_env={"AUTOCOMPLETE_API_KEY": KEY + "\n"})
    assert result.returncode == 0 and result.stdout == b"san ok\n", result.stderr


def test_credentials_in_the_url_are_refused_and_never_shown(cli, env, tmp_path):
    result = cli("--api", "http://alice:s3cret@127.0.0.1:9/v1", "-m", "m", "san")
    err = result.stderr.decode()
    assert result.returncode == 2 and err.count("\n") == 1 and "user name or password" in err
    assert "s3cret" not in err and "alice" not in err
    notices = tmp_path / "data" / "notices"
    assert not notices.exists() or not any("s3cret" in p.name for p in notices.iterdir())


def test_only_loopback_and_localhost_count_as_local():
    from autocomplete.engine.api import _local

    assert all(map(_local, ["localhost", "LOCALHOST", "a.localhost", "127.0.0.1", "127.3.4.5", "::1"]))
    assert not any(map(_local, ["127.evil.example", "localhost.evil.example", "10.0.0.1", "example.com", "::2"]))


def test_marker_file_names_never_come_from_a_url_as_they_are(tmp_path, monkeypatch):
    from autocomplete import terminal

    monkeypatch.setenv("AUTOCOMPLETE_DATA_DIR", str(tmp_path))
    terminal.notice_once("api-no-top-k-../../x:1", "said")
    terminal.notice_once("api-no-top-k-../../x:1", "said")
    (made,) = (tmp_path / "notices").iterdir()
    assert made.parent == tmp_path / "notices" and "/" not in made.name and not made.name.startswith(".")


# --- what servers say reaches the terminal harmless ---------------------------------------------------------------


def test_escapes_in_a_servers_error_never_reach_stderr_raw(cli):
    with http_server("127.0.0.1", lambda h: models(h, "m") or h.reply(500, {"error": HOSTILE})) as (base, _):
        result = cli("--api", base, "-m", "m", "san")
    line = one_error(result)
    assert not any(c in result.stderr.decode() for c in "\x1b\x07\u202e")
    assert "\\x1b]0;pwned\\x07" in line and "\\u202e" in line  # shown, not obeyed


def test_escapes_in_a_model_id_never_reach_stderr_raw(cli):
    with http_server("127.0.0.1", lambda h: models(h, HOSTILE, "other")) as (base, _):
        result = cli("--api", base, "san")
    err = result.stderr.decode()
    assert result.returncode == 2 and "choose one with -m" in err
    assert not any(c in err for c in "\x1b\x07\u202e")


# --- odd numbers in the environment ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "nan", "1e300", "-1", "soon"])
def test_an_api_timeout_that_is_no_number_of_seconds_is_one_line(cli, value):
    result = cli("--api", "http://127.0.0.1:9/v1", "-m", "m", "san", extra_env={"AUTOCOMPLETE_API_TIMEOUT": value})
    err = result.stderr.decode()
    assert result.returncode == 2 and err.count("\n") == 1 and "AUTOCOMPLETE_API_TIMEOUT must" in err


# --- replies of the wrong shape -----------------------------------------------------------------------------------


def reply_with(body: bytes):
    def answer(handler: JsonHandler) -> None:
        if models(handler, "m"):
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream" if body.startswith(b"data:") else "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    return answer


@pytest.mark.parametrize("payload, said", [
    (b'{"choices": 5}', "choices that are not a list of objects"),
    (b'{"choices": [1]}', "choices that are not a list of objects"),
    (b'{"choices": [{"index": 0, "text": " x", "finish_reason": "stop"}], "usage": [1, 2]}',
     "usage that is not an object"),
])
@pytest.mark.parametrize("streamed", [True, False])  # a one-shot completion streams; --suggest's requests don't
def test_a_reply_of_the_wrong_shape_is_one_line(cli, payload, said, streamed):
    body, args = (b"data: " + payload + b"\n\n", ("san",)) if streamed else (payload, ("--suggest", "3", "san"))
    with http_server("127.0.0.1", reply_with(body)) as (base, _):
        result = cli("--api", base, "-m", "m", *args)
    line = one_error(result)
    assert said in line and "unexpected" not in line, line


def test_a_status_line_that_is_not_http_is_one_line(cli):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\nnot http at all\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    try:
        result = cli("--api", f"http://127.0.0.1:{listener.getsockname()[1]}/v1", "-m", "m", "san")
    finally:
        listener.close()
    line = one_error(result)
    assert "not HTTP" in line and "unexpected" not in line, line


# --- streams that never end -----------------------------------------------------------------------------------------


def sending(chunk: bytes, every: float, times: int | None = None, first: bytes = b""):
    """A server that streams `first`, then `chunk` every `every` seconds, `times` times (None: until the client
    hangs up)."""
    def answer(handler: JsonHandler) -> None:
        if models(handler, "m"):
            return
        stream_head(handler)
        try:
            handler.wfile.write(first)
            for _ in itertools.count() if times is None else range(times):
                handler.wfile.write(chunk)
                handler.wfile.flush()
                time.sleep(every)
        except OSError:
            return
    return answer


# Ignores max_tokens: a word every 10 ms until the client hangs up.
endless = sending(f"data: {json.dumps({'choices': [{'index': 0, 'text': ' la'}]})}\n\n".encode(), 0.01)
# A comment every 0.2 s, never an event: no silence for a socket timeout to notice.
keep_alive_only = sending(b": ping\n", 0.2, 300)
# One "line" of 64 MiB, sent until the client stops reading.
no_line_break = sending(b"x" * (1 << 20), 0, 64, first=b"data: ")


def test_a_server_that_ignores_max_tokens_is_cut_at_n(cli):
    with http_server("127.0.0.1", endless) as (base, _):
        started = time.monotonic()
        result = cli("--api", base, "-m", "m", "--style", "text", "--stop", "none", "-n", "5", "--json", "san")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["completion"] == " la" * 5 and record["finish_reason"] == "length"
    assert time.monotonic() - started < 30


def test_a_server_that_only_keeps_the_line_alive_times_out(cli):
    with http_server("127.0.0.1", keep_alive_only) as (base, _):
        started = time.monotonic()
        result = cli("--api", base, "-m", "m", "--style", "text", "san", extra_env={"AUTOCOMPLETE_API_TIMEOUT": "2"})
    assert "sent no data for 2 s" in one_error(result) and time.monotonic() - started < 30


def test_a_line_with_no_end_is_refused_in_bounded_memory(cli):
    with http_server("127.0.0.1", no_line_break) as (base, _):
        result = cli("--api", base, "-m", "m", "--style", "text", "san")
    assert "a line longer than 1 MiB" in one_error(result)
