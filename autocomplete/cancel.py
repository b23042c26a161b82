"""One way to stop work under way: whoever runs it passes a check (a callable of no arguments) that raises
Cancelled once the work is no longer wanted (the client hung up, a newer keystroke came, the server is stopping,
the caller left the loop). The search calls it before every forward, the loop at every token."""

from __future__ import annotations

from collections.abc import Callable

Check = Callable[[], None]


class Cancelled(Exception):
    """The work is no longer wanted: stop, and free the model. Its message says why, where someone reads it."""


def never() -> None:
    """The check of work nobody cancels."""


class CtrlC:
    """Ctrl-C as a check, for work the user waits on in the main thread. Python raises KeyboardInterrupt in whatever
    code runs when the signal comes, and code run by the garbage collector (a finalizer) swallows it, so now and
    then a Ctrl-C was lost and the work went on: here it is also noted, and the work's next check raises it again.
    Installed only over Python's own handler (not where SIGINT is ignored, or handled by someone else)."""

    def __init__(self):
        self.seen = False
        self._before = None

    def __enter__(self) -> CtrlC:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._before = signal.signal(signal.SIGINT, self._noted)
        return self

    def __exit__(self, *exc) -> None:
        if self._before is not None:
            import signal

            signal.signal(signal.SIGINT, self._before)

    def _noted(self, signum, frame) -> None:
        self.seen = True
        raise KeyboardInterrupt

    def __call__(self) -> None:
        if self.seen:
            raise KeyboardInterrupt
