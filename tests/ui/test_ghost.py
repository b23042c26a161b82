"""Ghost text: the suggester without a terminal, its cancellation, and real terminal sessions, where prompt_toolkit
drives it (one suggestion at a time), in process and against a stand-in --api server whose requests are timed."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from autocomplete.backend.backends import InProcess
from autocomplete.ui.ghost import ASKING_AT_MOST, Ghost, continuation
from autocomplete.settings import Settings
from conftest import console_script
from ptyrun import PtySession

REPLAY = Path(__file__).parent.parent / "engine" / "replay_server.py"


def TEXT():
    return Settings(style="text")  # the tiny model memorised plain phrases


def test_continuation_is_the_greedy_next_words(tiny):
    assert continuation(tiny, "san", style="text") == " francisco weather is good"
    assert continuation(tiny, "san", style="text", words=2) == " francisco weather"
    assert continuation(tiny, "seoul", style="text") == " subway map"  # the model ended the text: fewer words


def test_trailing_space_is_continued_like_a_word_boundary(tiny):
    assert continuation(tiny, "san ", style="text") == "francisco weather is good"


def test_nothing_for_empty_text_or_a_new_line(tiny):
    assert all(continuation(tiny, text, style="text") == "" for text in ("", "   ", "san\n"))


def test_continuation_stops_when_no_longer_wanted(tiny):
    asked = []

    def wanted():
        asked.append(1)
        return len(asked) < 2

    assert continuation(tiny, "san", style="text", wanted=wanted) == ""


def test_cancel_drops_pending_work(tiny):
    ghost = Ghost(lambda: InProcess(tiny), debounce=2.0, settings=TEXT)  # ample time for the newer call to arrive
    result = []
    pending = threading.Thread(target=lambda: result.append(ghost("san")))
    pending.start()
    ghost.cancel()  # Enter was pressed
    pending.join()
    assert result == [""]


def test_ghost_text_in_the_repl(env, tiny_dir, tmp_path):
    session = PtySession([console_script(), "-m", str(tiny_dir), "-t", "0"], {**env, "TERM": "xterm"})
    try:
        session.expect(">")
        session.send("san")
        session.expect(" francisco weather is good")  # shown after the cursor, before any Enter
        session.send("\x1b[1;5C")  # Ctrl-→ takes one word of it
        session.send("\r")
        session.expect("san francisco weather is good in april?")
        session.expect(">")
        session.send("seoul")
        session.expect(" subway map")
        session.send("\x1b[C")  # → takes all of it
        session.send("\r")
        session.expect("map\n>")  # the completion's line, then a fresh prompt (not the redrawn input line)
        assert session.leave() == 0
    finally:
        session.close()
    entered = [line[1:] for line in (tmp_path / "data" / "history").read_text().splitlines() if line.startswith("+")]
    assert entered == ["san francisco", "seoul subway map"]


def test_the_suggestion_list_under_the_prompt(env, tiny_dir, tmp_path):
    """/suggest 3 on: the list shows while typing, before any Enter; ↓ picks a row into the line, Enter lists it."""
    session = PtySession([console_script(), "-m", str(tiny_dir), "-t", "1", "-k", "3", "-p", "1"],
                         {**env, "TERM": "xterm"})
    try:
        session.expect(">")
        session.send("/suggest 3\r")
        session.expect("suggestions: 3 per line")
        session.send("san fr")
        session.expect("san francisco weather")  # a row of the list, drawn under the input line
        session.expect("%")
        session.send("\x1b[B")  # ↓ takes the first row into the line
        session.send("\r")
        session.expect("san francisco")
        session.expect(">")
        assert session.leave() == 0
    finally:
        session.close()
    entered = [line[1:] for line in (tmp_path / "data" / "history").read_text().splitlines() if line.startswith("+")]
    assert entered[-1].startswith("san francisco")


def test_ghost_text_finishes_the_word_being_typed_on_the_real_model(smol):
    """Ghost text heals too: typed "stock mar", the grey text starts with the rest of the word."""
    assert continuation(smol, "stock mar", style="query").startswith("ket")
    assert continuation(smol, "The capital of Fra", style="text").startswith("nce")


def test_cancel_can_wait_for_the_running_call_to_let_go(tiny, monkeypatch):
    """Enter completes the line with the same model: the ghost call still running must stop first."""
    import time

    import autocomplete.text.sample as generate_module

    inside, finished = threading.Event(), threading.Event()
    real = generate_module.generate

    def slow(*args, **kwargs):
        try:
            for token in real(*args, **kwargs):
                inside.set()
                time.sleep(0.3)  # a slow forward
                yield token
        finally:
            finished.set()

    monkeypatch.setattr(generate_module, "generate", slow)
    ghost = Ghost(lambda: InProcess(tiny), debounce=0, settings=TEXT)
    worker = threading.Thread(target=ghost, args=("san",))
    worker.start()
    assert inside.wait(10)
    ghost.cancel(wait=True)
    assert finished.is_set()  # the call had let go of the model by the time cancel returned
    worker.join()


def test_an_error_shows_no_ghost_text_unless_debugging(monkeypatch):
    def gone():
        raise ConnectionError("the server went away")

    ghost = Ghost(gone, debounce=0, settings=TEXT)
    assert ghost("san") == ""
    monkeypatch.setenv("AUTOCOMPLETE_DEBUG", "1")
    with pytest.raises(ConnectionError):
        ghost("san")


# --- against a stand-in --api server (tests/engine/replay_server.py): "drip" sends a word a second, "stall" never
# answers, "stall-once" answers all but its first request at once; GET /v1/log times each request -----------------


@pytest.fixture
def replay(tmp_path):
    """A stand-in server of this test's own (its log and "stall-once" start afresh): (base URL, its process)."""
    port_file = tmp_path / "port"
    server = subprocess.Popen([sys.executable, str(REPLAY), str(port_file)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port_file.read_text()}/v1", server
    finally:
        server.kill()
        server.wait(timeout=10)


def asked(base: str) -> dict[str, dict]:
    """The server's log: prompt -> its request (when it "arrived" and its connection "closed", server time)."""
    with urllib.request.urlopen(base + "/log", timeout=5) as response:
        return {request["prompt"]: request for request in json.load(response)["requests"]}


def until(session: PtySession, check, timeout: float = 30):
    """check()'s first true value, the terminal read meanwhile."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s; screen:\n{session.screen[-2000:]}")
        session._read(0.05)
    return found


def repl_over(base: str, model: str, env: dict) -> PtySession:
    session = PtySession([console_script(), "--api", base, "-m", model], {**env, "TERM": "xterm"})
    session.expect(">")
    return session


def leave(session: PtySession) -> None:
    """Ctrl-C clears the line, then Ctrl-D at the fresh prompt leaves."""
    session.send("\x03")
    assert session.leave(timeout=15) == 0


def test_a_keystroke_cancels_the_ghost_request_for_the_text_before_it(env, replay):
    """prompt_toolkit asks for "ab" only once the call for "a" has returned: left to run, it would take 5 s (a word a
    second until it has 5)."""
    base, _ = replay
    session = repl_over(base, "drip", env)
    try:
        session.send("a")
        until(session, lambda: "a" in asked(base))
        session.send("b")
        until(session, lambda: "ab" in asked(base), timeout=3)
        stale = until(session, lambda: asked(base)["a"]["closed"] and asked(base)["a"], timeout=5)
        assert stale["closed"] - stale["arrived"] < 3  # hung up at its next word
        session.expect(" w0 w1 w2 w3")  # the ghost text for "ab"
        leave(session)
    finally:
        session.close()


def test_a_busy_server_holds_neither_the_next_keystroke_nor_enter(env, replay):
    """"stall-once" never answers the ghost request for "a": the one for "ab" goes at once, and so does Enter's."""
    base, _ = replay
    session = repl_over(base, "stall-once", env)
    try:
        session.send("a")
        until(session, lambda: "a" in asked(base))
        session.send("b")
        until(session, lambda: "ab" in asked(base), timeout=3)
        session.expect(" soon")  # its ghost text
        assert asked(base)["a"]["closed"] is None  # left waiting in the background
        leave(session)
    finally:
        session.close()


def test_enter_never_waits_for_a_ghost_request_to_a_busy_server(env, replay):
    base, _ = replay
    session = repl_over(base, "stall-once", env)
    try:
        session.send("a")
        until(session, lambda: "a" in asked(base))
        session.send("\r")  # without the cancel, Enter waited the --api timeout out (60 s)
        session.expect("a soon", timeout=10)
        session.expect(">")
        assert session.leave(timeout=15) == 0
    finally:
        session.close()


def test_requests_left_to_a_busy_server_are_bounded(env, replay):
    base, _ = replay
    session = repl_over(base, "stall", env)
    try:
        for count, typed in enumerate("abcdefgh"[:ASKING_AT_MOST], 1):
            session.send(typed)
            until(session, lambda: len(asked(base)) == count)  # noqa: B023 - called at once
        session.send("xy")
        deadline = time.monotonic() + 2
        until(session, lambda: time.monotonic() > deadline)  # time enough for more requests to go
        assert len(asked(base)) == ASKING_AT_MOST
        leave(session)  # the one waiting for its turn lets go as the prompt ends
    finally:
        session.close()


def test_a_server_gone_mid_session_shows_no_error_while_typing(env, replay):
    """Ghost text is best-effort: the server killed mid-stream, then refusing connections, shows none; Enter says
    what is wrong, once, and the session goes on."""
    base, server = replay
    session = repl_over(base, "drip", env)
    try:
        session.send("a")
        until(session, lambda: "a" in asked(base))
        server.kill()
        server.wait(timeout=10)
        deadline = time.monotonic() + 2
        until(session, lambda: time.monotonic() > deadline)  # the stream broken under the ghost request
        session.send("b")
        deadline = time.monotonic() + 2
        until(session, lambda: time.monotonic() > deadline)  # a ghost request for "ab", refused
        session.send("\r")
        session.expect("connection refused", timeout=30)
        session.expect(">")
        session.send("/temp 0\r")
        session.expect("temperature 0")
        session.expect(">")
        assert session.leave(timeout=15) == 0
    finally:
        session.close()
    assert "Unhandled exception" not in session.screen and "Traceback" not in session.screen
    assert session.screen.count("autocomplete:") == 1, session.screen


def test_the_list_under_the_prompt_reads_as_a_keystroke_list(tiny, monkeypatch):
    """The REPL's list, refreshed per keystroke, bounds its reads (KEYSTROKE_READS); a list asked for once
    (autocomplete.ui.actions) doesn't."""
    import autocomplete.text.suggest as search

    asked = []
    real = search.suggest
    monkeypatch.setattr(search, "suggest", lambda *args, **kwargs: asked.append(kwargs.get("reads")) or
                        real(*args, **kwargs))
    tiny.prefixes = None
    listed = Ghost(lambda: InProcess(tiny), debounce=0.0, settings=TEXT).suggestions("san", 3)
    assert asked == [search.KEYSTROKE_READS] and listed
