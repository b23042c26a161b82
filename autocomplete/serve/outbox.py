"""What a server says to one client, written by a thread of its own: the thread that holds the model puts messages
here and never waits on a client that stopped reading (a suspended one, `kill -STOP`). Used by the warm server and
by --web."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Message = TypeVar("Message")
_END = object()


class Outbox(Generic[Message]):
    """write(message) runs in order on the outbox's thread; the first OSError it raises (a hang-up, or a write timed
    out by the socket's own timeout) sets `gone` and drops the rest. close() waits for what was put to be written."""

    def __init__(self, write: Callable[[Message], None]):
        self._write, self._queue = write, queue.SimpleQueue()
        self.gone = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def put(self, message: Message) -> None:
        if not self.gone.is_set():
            self._queue.put(message)

    def close(self, timeout: float) -> bool:
        """Wait up to `timeout` for everything put to be written (or dropped); whether it was."""
        self._queue.put(_END)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while (message := self._queue.get()) is not _END:
            if self.gone.is_set():
                continue
            try:
                self._write(message)
            except OSError:
                self.gone.set()
