"""Generation settings: one dataclass shared by the CLI, the REPL and the JSON output, and the checks on them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

STOP_RULES = ("line", "sentence", "none")
STYLES = ("auto", "query", "text")
DEFAULT_MODEL = "gpt2"


@dataclass
class Settings:
    # Defaults suit a search box: a short, fairly likely continuation that ends with its sentence.
    temperature: float = 0.7
    top_k: int = 50
    top_p: float = 0.95
    max_tokens: int = 24
    seed: int | None = None
    stop: str = "sentence"
    style: str = "auto"  # query, text, or auto: query for a short one-line prompt (autocomplete.text.frames)
    examples: list[str] | None = None  # the user's example queries for the query style (--examples)

    def as_dict(self) -> dict:
        return asdict(self)

    def shown(self) -> dict:
        """The settings as --json shows them: the example queries are the user's own file, not repeated."""
        return {k: v for k, v in asdict(self).items() if k != "examples"}


# Each check returns the value or raises ValueError with the sentence the user sees.
def check_temperature(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), not {value}")
    return value


def check_top_k(value: int) -> int:
    if value < 0:
        raise ValueError(f"top-k must be >= 0 (0 = off), not {value}")
    return value


def check_top_p(value: float) -> float:
    if not (0 < value <= 1):  # also rejects NaN
        raise ValueError(f"top-p must be in (0, 1], not {value}")
    return value


def check_max_tokens(value: int) -> int:
    if value < 1:
        raise ValueError(f"max-tokens must be >= 1, not {value}")
    return value


def check_stop(value: str) -> str:
    if value not in STOP_RULES:
        raise ValueError(f"stop must be one of {', '.join(STOP_RULES)}, not {value!r}")
    return value


def check_style(value: str) -> str:
    if value not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, not {value!r}")
    return value


def check_examples(value: list | None) -> list | None:
    if value is not None and (not value or not all(isinstance(line, str) and line for line in value)):
        raise ValueError("examples must be a non-empty list of example queries")
    return value
