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
