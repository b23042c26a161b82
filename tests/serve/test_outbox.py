"""The outbox: messages written in order on a thread of its own; the first failed write drops the rest."""

from __future__ import annotations

import threading

from autocomplete.serve.outbox import Outbox


def test_messages_are_written_in_order_and_close_waits_for_them():
    written, slow = [], threading.Event()

    def write(message: int) -> None:
        slow.wait(5)
        written.append(message)

    outbox = Outbox(write)
    for message in range(100):
        outbox.put(message)  # returns at once, however slow the writes
    assert written == []
    slow.set()
    assert outbox.close(timeout=10) and written == list(range(100))


def test_a_failed_write_marks_the_client_gone_and_drops_the_rest():
    written = []

    def write(message: int) -> None:
        if message == 3:
            raise BrokenPipeError
        written.append(message)

    outbox = Outbox(write)
    for message in range(10):
        outbox.put(message)
    assert outbox.close(timeout=10)
    assert written == [0, 1, 2] and outbox.gone.is_set()


def test_close_gives_up_on_a_write_that_blocks():
    held = threading.Event()
    outbox = Outbox(lambda message: held.wait(10))
    outbox.put("stuck")
    assert outbox.close(timeout=0.2) is False
    held.set()
