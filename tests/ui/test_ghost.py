"""Ghost text: the suggester without a terminal, its cancellation, and one real terminal session."""

from __future__ import annotations

import threading

from autocomplete.ui.ghost import Ghost, continuation
from autocomplete.settings import Settings
from conftest import console_script
from ptyrun import PtySession


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


def test_newer_keystroke_wins(tiny):
    ghost = Ghost(lambda: tiny, debounce=2.0, settings=TEXT)  # ample time for the newer call to arrive
    results = {}
    older = threading.Thread(target=lambda: results.update(older=ghost("sa")))
    older.start()
    results["newer"] = ghost("san")  # typed while the older call was still waiting
    older.join()
    assert results == {"older": "", "newer": " francisco weather is good"}


def test_cancel_drops_pending_work(tiny):
    ghost = Ghost(lambda: tiny, debounce=2.0, settings=TEXT)  # ample time for the newer call to arrive
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
        session.send("\x04")
        assert session.wait() == 0
    finally:
        session.close()
    entered = [line[1:] for line in (tmp_path / "data" / "history").read_text().splitlines() if line.startswith("+")]
    assert entered == ["san francisco", "seoul subway map"]


def test_ghost_text_finishes_the_word_being_typed_on_the_real_model(smol):
    """Ghost text heals too: typed "stock mar", the grey text starts with the rest of the word."""
    assert continuation(smol, "stock mar", style="query").startswith("ket")
    assert continuation(smol, "The capital of Fra", style="text").startswith("nce")


def test_cancel_can_wait_for_the_running_call_to_let_go(tiny, monkeypatch):
    """Enter completes the line with the same model: the ghost call still running must stop first."""
    import time

    import autocomplete.engine.generate as generate_module

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
    ghost = Ghost(lambda: tiny, debounce=0, settings=TEXT)
    worker = threading.Thread(target=ghost, args=("san",))
    worker.start()
    assert inside.wait(10)
    ghost.cancel(wait=True)
    assert finished.is_set()  # the call had let go of the model by the time cancel returned
    worker.join()
