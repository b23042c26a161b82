"""autocomplete: a language model's next-token loop, streamed to the terminal like a search box filling in.

The Python API (autocomplete.backend.model): load(), and what it returns. Imported on first use, so the command's
start-up doesn't pay for it."""

__version__ = "0.1.0"

_API = ("load", "Model", "Params", "Completion", "Suggestion")


def __getattr__(name: str):
    if name in _API:
        from autocomplete.backend import model  # on first use: the command never needs it

        return getattr(model, name)
    raise AttributeError(f"module 'autocomplete' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
