"""autocomplete --web over HTTP (autocomplete.ui.web): each endpoint answers what the library computes for the same
text, the Host check and the method, length and rate limits refuse in one JSON line, and the command itself prints
its URL, refuses a busy port and stops on Ctrl-C. In a real browser: tests/ui/test_web_browser.py."""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import socket
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from urllib.parse import quote

import numpy as np
import pytest

from autocomplete.settings import Settings
from autocomplete.text.complete import complete
from autocomplete.text.sample import probabilities
from autocomplete.text.suggest import KEYSTROKE_READS, suggest
from autocomplete.backend.backends import OverApi
from autocomplete.ui import web
from conftest import console_script

SETTINGS = Settings(style="text", seed=7)


@contextlib.contextmanager
def running(answers, settings: Settings = SETTINGS):
    site = web.Site(0, settings)
    site.answers = answers
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.shutdown()
        site.server_close()


@pytest.fixture(scope="module")
def site(tiny_dir):
    from autocomplete.engine import models

    lm = models.load(str(tiny_dir), "cpu", "fp32", engine="onnx")  # exact: its logits are checked
    with running(web.Local(lm)) as site:
        yield site


def get(site, path: str, headers: dict | None = None, method: str = "GET"):
    """(status, headers, body bytes)"""
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=60)
    try:
        conn.request(method, path, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        conn.close()


def get_json(site, path: str):
    status, headers, body = get(site, path)
    return status, headers, json.loads(body)


def read_all(conn: socket.socket) -> bytes:
    """Everything the server sends until it hangs up."""
    reply = b""
    while chunk := conn.recv(4096):
        reply += chunk
    return reply


def events(body: bytes) -> list[tuple[str, dict]]:
    """A Server-Sent Events stream -> [(event name, data)]"""
    found = []
    for block in body.decode().split("\n\n"):
        if block.strip():
            fields = dict(line.split(": ", 1) for line in block.splitlines())
            found.append((fields.get("event", "message"), json.loads(fields["data"])))
    return found


@pytest.mark.parametrize("keystroke, reads", [("", None), ("&keystroke=1", KEYSTROKE_READS)])
def test_suggest_is_the_opensearch_format_of_the_library_s_suggestions(site, keystroke, reads):
    lm = site.answers.lm
    lm.prefixes = None  # each list starts from nothing read (a keystroke's reads what earlier ones left)
    status, headers, body = get_json(site, "/suggest?q=" + quote("san fr") + "&n=3" + keystroke)
    assert status == 200
    assert headers["Content-Type"] == "application/x-suggestions+json; charset=utf-8"
    q, texts, descriptions, urls = body
    assert q == "san fr" and 1 <= len(texts) <= 3 and len(descriptions) == len(urls) == len(texts)
    lm.prefixes = None
    found = suggest(lm, "san fr", SETTINGS, 3, SETTINGS.words, reads=reads)
    assert texts == ["san fr" + s.completion for s in found]
    assert descriptions == [f"{s.probability:.1%}" for s in found]
    assert "san francisco" in texts
    assert urls == [f"http://127.0.0.1:{site.port}/?q={quote(text)}" for text in texts]


def test_suggest_of_nothing_is_an_empty_list(site):
    assert get_json(site, "/suggest?q=")[2] == ["", [], [], []]


def test_explain_is_the_record_of_the_next_step_with_the_model_s_logits(site):
    lm = site.answers.lm
    status, _, record = get_json(site, "/explain?q=" + quote("san francisco") + "&t=0.5&k=20&top=12")
    assert status == 200
    assert record["settings"]["temperature"] == 0.5 and record["settings"]["top_k"] == 20
    (step,) = record["steps"]
    candidates = step["candidates"]
    assert len(candidates) >= 12
    # the step reads what the completion wrote before it: the prompt's tokens, then the healed word's
    logits = lm.engine.read(lm.encode("san") + record["tokens"][:-1])[0]
    top = np.argsort(-logits, kind="stable")[:12].tolist()
    assert [c["token"] for c in candidates[:12]] == top
    assert [c["logit"] for c in candidates[:12]] == pytest.approx(logits[top].tolist(), abs=1e-3)
    at_one = probabilities(logits, 1.0)
    assert [c["probability"]["1.0"] for c in candidates[:12]] == pytest.approx(at_one[top].tolist(), abs=1e-5)
    assert step["picked"]["token"] == record["tokens"][-1]
    assert record["prompt"] + record["completion"] == "san francisco" + record["completion"]


def test_complete_streams_the_pieces_of_the_library_s_completion(site):
    status, headers, body = get(site, "/complete?q=" + quote("san francisco") + "&t=0&n=12")
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    stream = events(body)
    pieces = [data["piece"] for name, data in stream if name == "message"]
    (done,) = [data for name, data in stream if name == "done"]
    assert "".join(pieces) == done["completion"] and len(pieces) >= 2  # word by word
    settings = Settings(style="text", temperature=0.0, max_tokens=12, seed=7)
    assert done["completion"] == complete(site.answers.lm, "san francisco", settings, lambda piece: None).completion
    assert done["completion"].startswith(" weather is good")


def hang_up_after_the_first_piece(site, path: str) -> None:
    """Ask for a stream, read until its first event, and hang up."""
    with socket.create_connection(("127.0.0.1", site.port)) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{site.port}\r\n\r\n".encode())
        seen = b""
        while b"data:" not in seen:
            seen += conn.recv(4096)


def test_a_client_that_hangs_up_mid_stream_frees_the_model(site):
    hang_up_after_the_first_piece(site, "/complete?q=san&n=200&stop=none&t=1")
    started = time.monotonic()
    assert get_json(site, "/suggest?q=seoul")[0] == 200
    assert time.monotonic() - started < 30


def test_a_client_that_only_shuts_down_its_sending_half_gets_the_stream(site):
    """`nc -N`: the request sent, the client's sending half shut; it still reads, and gets the whole stream."""
    with socket.create_connection(("127.0.0.1", site.port), timeout=60) as conn:
        conn.sendall(f"GET /complete?q=san+francisco&t=0&n=12 HTTP/1.1\r\nHost: 127.0.0.1:{site.port}\r\n\r\n"
                     .encode())
        conn.shutdown(socket.SHUT_WR)
        reply = read_all(conn)
    stream = events(reply.partition(b"\r\n\r\n")[2])
    (done,) = [data for name, data in stream if name == "done"]
    assert done["completion"].startswith(" weather is good")
    assert "".join(data["piece"] for name, data in stream if name == "message") == done["completion"]


def test_opensearch_description_points_at_the_suggest_endpoint(site):
    status, headers, body = get(site, "/opensearch.xml")
    assert status == 200 and headers["Content-Type"].startswith("application/opensearchdescription+xml")
    ns = {"os": "http://a9.com/-/spec/opensearch/1.1/"}
    urls = {u.get("type"): u.get("template") for u in ET.fromstring(body).findall("os:Url", ns)}
    assert urls["application/x-suggestions+json"] == f"http://127.0.0.1:{site.port}/suggest?q={{searchTerms}}"
    assert urls["text/html"] == f"http://127.0.0.1:{site.port}/?q={{searchTerms}}"


def test_the_page_and_its_files_are_served_with_a_strict_policy(site):
    status, headers, body = get(site, "/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'src="/page.js"' in body and b"http" not in body.replace(b"opensearchdescription", b"")  # no CDN
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert get(site, "/page.js")[1]["Content-Type"] == "text/javascript; charset=utf-8"
    assert get(site, "/page.css")[0] == 200
    status, headers, body = get(site, "/", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0


@pytest.mark.parametrize("host", ["evil.example:80", "evil.example", "127.0.0.1", "127.0.0.1:1", ""])
def test_a_host_that_is_not_ours_is_refused(site, host):
    status, _, body = get(site, "/suggest?q=san", headers={"Host": host})
    assert status == 403 and "Host" in json.loads(body)["error"]


def test_localhost_is_ours_too(site):
    assert get(site, "/info", headers={"Host": f"localhost:{site.port}"})[0] == 200


@pytest.mark.parametrize("path, status, said", [
    ("/suggest?q=" + "a" * (web.MAX_QUERY + 1), 414, "longer than"),
    ("/suggest?q=san&n=0", 400, "n must be"),
    ("/suggest?q=san&n=many", 400, "whole number"),
    ("/explain?q=san&t=-1", 400, "temperature"),
    ("/explain?q=san&p=0", 400, "top-p"),
    ("/explain?q=san&t=warm", 400, "t:"),
    ("/explain?q=san&style=poem", 400, "style"),
    ("/explain?q=", 400, "?q="),
    ("/complete", 400, "?q="),
    ("/complete?q=san&seed=-1", 400, "seed must be"),
    ("/complete?q=san&n=100000", 400, "max-tokens must be"),
    ("/suggest?q=" + quote("\U0001F600" * (web.MAX_QUERY + 1)), 414, "longer than"),
    ("/suggest?q=%00", 400, "NUL"),
    ("/nothing", 404, "nothing at"),
])
def test_bad_requests_get_one_line(site, path, status, said, capfd):
    got, headers, body = get(site, path)
    assert got == status and headers["Content-Type"] == "application/json; charset=utf-8"
    error = json.loads(body)["error"]
    assert said in error and "\n" not in error
    logged = capfd.readouterr().err.strip().splitlines()
    assert len(logged) == 1 and str(status) in logged[0] and "Traceback" not in logged[0]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_only_get_is_served(site, method):
    status, headers, body = get(site, "/suggest?q=san", method=method)
    assert status == 405 and headers["Allow"] == "GET, HEAD" and "GET only" in json.loads(body)["error"]


def test_a_malformed_request_gets_one_json_line_and_no_traceback(site, capfd):
    with socket.create_connection(("127.0.0.1", site.port)) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n")
        reply = read_all(conn)  # the server hangs up once it has said so
    assert reply.startswith(b"HTTP/1.1 431") and b'{"error": "Too many headers"}' in reply
    err = capfd.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_requests_past_the_rate_are_refused(site):
    site.bucket = web.Bucket(rate=0.5, burst=3)
    try:
        statuses = [get(site, "/info")[0] for _ in range(5)]
        refused = get(site, "/info")
    finally:
        site.bucket = web.Bucket(web.RATE, web.BURST)
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
    assert refused[1]["Retry-After"] == "1" and "too many requests" in json.loads(refused[2])["error"]


def test_info_gives_the_page_its_starting_settings(site):
    status, _, info = get_json(site, "/info")
    assert status == 200 and info["engine"] == "onnx" and info["top"] == web.PAGE_TOP
    assert info["settings"]["temperature"] == SETTINGS.temperature and info["settings"]["style"] == "text"


def test_over_the_api_the_endpoints_answer_from_the_server(logprob_api):
    settings = Settings(style="text", seed=3, api=logprob_api, model="tiny-gpt2")
    with running(web.OverApi(OverApi.connect(settings.api, settings.model)), settings) as site:
        status, _, (q, texts, _, _) = get_json(site, "/suggest?q=" + quote("san fr"))
        assert status == 200 and texts and all(text.startswith("san fr") for text in texts)
        assert "san francisco" in texts
        status, _, record = get_json(site, "/explain?q=" + quote("san francisco") + "&top=20")
        assert status == 200 and record["engine"] is None
        (step,) = record["steps"]
        assert 1 < len(step["candidates"]) <= 20 and all("logprob" in c for c in step["candidates"])
        stream = events(get(site, "/complete?q=" + quote("san francisco") + "&t=0&n=8")[2])
        (done,) = [data for name, data in stream if name == "done"]
        assert "".join(d["piece"] for name, d in stream if name == "message") == done["completion"]
        assert done["completion"].startswith(" weather")


# The command itself

def start_web(env, *args: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([console_script(), "--web", "--port", "0", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env)
    line = process.stdout.readline().decode()
    assert line.startswith("Serving http://127.0.0.1:"), (line, process.stderr.read().decode())
    return process, line.split()[1]


def test_the_command_prints_its_url_and_stops_on_ctrl_c(env):
    process, url = start_web(env)
    try:
        port = int(url.rsplit(":", 1)[1].strip("/"))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/suggest?q=san%20fr")
        reply = conn.getresponse()
        assert reply.status == 200 and json.loads(reply.read())[0] == "san fr"
        # a second --web on the same port says so in one line
        busy = subprocess.run([console_script(), "--web", "--port", str(port)], capture_output=True, env=env,
                              timeout=60)
        assert busy.returncode == 1 and busy.stdout == b""
        assert busy.stderr.decode().count("\n") == 1 and f"port {port}" in busy.stderr.decode()
        assert "in use" in busy.stderr.decode()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
    assert b"Traceback" not in process.stderr.read()


def test_ctrl_c_during_a_request_exits_130_cleanly(env, smollm2_cache):
    """The starter model, whose forwards take long enough to be running when Ctrl-C comes (it aborted 3 in 3)."""
    env = {**env, "AUTOCOMPLETE_CACHE_DIR": str(smollm2_cache)}
    for _ in range(3):
        process, url = start_web(env, "-m", "smollm2-135m", "--stop", "none", "--style", "text")
        port = int(url.rsplit(":", 1)[1].strip("/"))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/complete?q=san&n=4000")
        reply = conn.getresponse()
        assert reply.status == 200 and reply.fp.readline().startswith(b"data: ")  # streaming
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
        err = process.stderr.read().decode()
        assert "terminate" not in err and "Aborted" not in err and "Traceback" not in err, err
        conn.close()


@pytest.mark.parametrize("args, said", [(("san",), "PROMPT"), (("--suggest", "3"), "--suggest"),
                                        (("--port", "70000"), "port must be")])
def test_web_refuses_what_it_does_not_take(cli, args, said):
    result = cli("--web", *args)
    assert result.returncode == 2 and said in result.stderr.decode() and result.stdout == b""


def test_port_without_web_is_a_usage_error(cli):
    result = cli("--port", "9000", "san")
    assert result.returncode == 2 and "--web" in result.stderr.decode()


def test_over_the_api_a_client_that_hangs_up_ends_the_server_s_stream(replay, monkeypatch):
    """--web --api: a page closed mid-stream closes the stream from the API server at the next event, rather than
    reading it to its end."""
    from autocomplete.engine.api import Api

    ended, real = threading.Event(), Api.stream

    def stream(self, body):
        try:
            yield from real(self, body)
        finally:
            ended.set()

    monkeypatch.setattr(Api, "stream", stream)
    with running(web.OverApi(OverApi(Api(replay), "slow"))) as site:  # a word every 0.2 s, for 120 s
        hang_up_after_the_first_piece(site, "/complete?q=go&n=500&stop=none")
        assert ended.wait(10)


def test_an_engine_that_fails_says_so_in_one_line(logprob_api, capfd):
    # "none": the stand-in sends no logprobs (as transformers serve), which the next token's odds need
    settings = Settings(style="text", seed=3, api=logprob_api, model="none")
    with running(web.OverApi(OverApi.connect(settings.api, settings.model)), settings) as site:
        status, _, body = get_json(site, "/explain?q=" + quote("san fr"))
        assert status == 502 and "logprobs" in body["error"] and "\n" not in body["error"]
        assert get_json(site, "/info")[0] == 200  # and the next request is served
    assert "Traceback" not in capfd.readouterr().err


def test_a_refused_request_s_body_is_never_read_as_another_request(site):
    # a page elsewhere POSTs (no preflight for text/plain) a body that is itself a request with our Host
    inner = f"GET /info HTTP/1.1\r\nHost: 127.0.0.1:{site.port}\r\n\r\n".encode()
    for method in ("POST", "GET"):
        with socket.create_connection(("127.0.0.1", site.port)) as conn:
            conn.sendall(f"{method} /suggest?q=a HTTP/1.1\r\nHost: 127.0.0.1:{site.port}\r\nContent-Type: text/plain"
                         f"\r\nContent-Length: {len(inner)}\r\n\r\n".encode() + inner)
            reply = read_all(conn)  # the server hangs up after its one answer
        assert reply.count(b"HTTP/1.1 ") == 1 and b"Connection: close" in reply
        assert reply.startswith(b"HTTP/1.1 405" if method == "POST" else b"HTTP/1.1 400")


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                                     {"Origin": "http://evil.example"}, {"Origin": "null"},
                                     {"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:1"}])
def test_a_request_from_another_site_is_refused_before_it_counts(site, headers):
    for _ in range(web.BURST + 5):  # past the rate limit's burst: none of them was counted
        status, _, body = get(site, "/suggest?q=san", headers=headers)
        assert status == 403 and "another site" in json.loads(body)["error"]
    assert get(site, "/suggest?q=san")[0] == 200


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {}])
def test_the_page_itself_and_other_clients_are_served(site, headers):
    own = {"Origin": f"http://127.0.0.1:{site.port}"} if headers.get("Sec-Fetch-Site") == "same-origin" else {}
    assert get(site, "/suggest?q=san", headers={**headers, **own})[0] == 200


def test_a_second_content_length_is_refused(site):
    with socket.create_connection(("127.0.0.1", site.port)) as conn:
        conn.sendall(f"GET /info HTTP/1.1\r\nHost: 127.0.0.1:{site.port}\r\nContent-Length: 0\r\n"
                     f"Content-Length: 5\r\n\r\nhello".encode())
        reply = read_all(conn)
    assert reply.startswith(b"HTTP/1.1 400") and b"no body" in reply and reply.count(b"HTTP/1.1 ") == 1


def test_a_client_that_resets_its_connection_is_no_error(site, capfd):
    import struct

    for partial in (b"", b"GET /info HTTP/1.1\r\nHo"):
        conn = socket.create_connection(("127.0.0.1", site.port))
        conn.sendall(partial)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends a reset
        conn.close()
    time.sleep(0.5)
    assert get_json(site, "/info")[0] == 200
    assert "unexpected" not in capfd.readouterr().err


def test_a_bad_host_closes_the_connection(site):
    with socket.create_connection(("127.0.0.1", site.port)) as conn:
        conn.sendall(b"GET /info HTTP/1.1\r\nHost: rebound.example\r\n\r\n"
                     + f"GET /info HTTP/1.1\r\nHost: 127.0.0.1:{site.port}\r\n\r\n".encode())
        reply = read_all(conn)
    assert reply.startswith(b"HTTP/1.1 403") and reply.count(b"HTTP/1.1 ") == 1


def test_json_for_the_page_has_no_infinities():
    assert json.loads(web.dumps({"logprob": float("-inf"), "p": [float("nan"), 0.5]})) == {"logprob": None,
                                                                                          "p": [None, 0.5]}
