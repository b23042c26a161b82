"""Reading stdin's lines: each with the line after it where that has arrived, never waiting for it."""

from __future__ import annotations

import threading
import time

import pytest

from autocomplete.ui.inputs import with_next


def test_each_line_comes_with_the_next_one_that_has_arrived():
    assert list(with_next(iter(["s", "sa", "san"]), wait=5)) == [("s", "sa"), ("sa", "san"), ("san", None)]
    assert list(with_next(iter([]))) == []


def test_a_line_is_not_kept_waiting_for_the_next():
    typed = threading.Event()

    def keystrokes():
        yield "s"
        typed.wait(30)  # the next keystroke comes only once the first line was answered
        yield "sa"

    lines = with_next(keystrokes(), wait=0.05)
    started = time.monotonic()
    assert next(lines) == ("s", None) and time.monotonic() - started < 10
    typed.set()
    assert list(lines) == [("sa", None)]


def test_an_error_reading_is_raised_where_the_lines_are_used():
    def broken():
        yield "s"
        raise OSError("stdin went away")

    lines = with_next(broken(), wait=5)
    assert next(lines) == ("s", None)
    with pytest.raises(OSError, match="stdin went away"):
        next(lines)
