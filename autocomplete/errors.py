"""Errors a user can fix: they reach the terminal as one line, never as a traceback."""


class UserError(Exception):
    """A problem with what the user asked for (bad value, missing model, no network)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(UserError):
    """The command line itself is wrong; exits 2 like every other usage error."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=2)


def first_line(said: object) -> str:
    """What an error (or a server's message) says, in one line: its first ("" if none); a library's can run to
    pages."""
    text = str(said).strip()
    return text.splitlines()[0] if text else ""
