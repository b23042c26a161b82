"""autocomplete: a language model's next-token loop, streamed to the terminal like a search box filling in."""

__version__ = "0.1.0"
