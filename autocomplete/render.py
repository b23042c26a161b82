"""How a completion reaches stdout: coloured on a terminal, plain text in a pipe, or one JSON object a line."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from autocomplete.complete import Completion
from autocomplete.settings import Settings


class TextRenderer:
    """The prompt (dim on a terminal) then the completion (highlighted) as it streams, then a newline."""

    def __init__(self, only_new: bool = False, file: TextIO | None = None):
        self.only_new = only_new
        self.file = file or sys.stdout
        self.console = None
        if self.file.isatty():
            from rich.console import Console  # honours NO_COLOR and TERM=dumb

            self.console = Console(file=self.file, highlight=False, soft_wrap=True)

    def start(self, prompt: str) -> None:
        if not self.only_new:
            self._write(prompt, "dim")

    def piece(self, text: str) -> None:
        self._write(text, "bold cyan")

    def finish(self, completion: Completion, model: str, settings: Settings) -> None:
        self._write("\n", None)

    def blank(self) -> None:
        self._write("\n", None)

    def _write(self, text: str, style: str | None) -> None:
        if self.console is not None:
            self.console.out(text, style=style, highlight=False, end="")
            self.console.file.flush()
        else:
            self.file.write(text)
            self.file.flush()


class JsonRenderer:
    """JSON Lines: one object per completion, written when it is done."""

    def __init__(self, file: TextIO | None = None):
        self.file = file or sys.stdout

    def start(self, prompt: str) -> None:
        pass

    def piece(self, text: str) -> None:
        pass

    def finish(self, completion: Completion, model: str, settings: Settings) -> None:
        self.file.write(json.dumps(record(completion, model, settings), ensure_ascii=False) + "\n")
        self.file.flush()

    def blank(self) -> None:
        pass  # a blank input line has nothing to report


def record(c: Completion, model: str, settings: Settings) -> dict:
    return {
        "prompt": c.prompt,
        "completion": c.completion,
        "model": model,
        "tokens": c.tokens,
        "finish_reason": c.finish_reason,
        "settings": {**settings.as_dict(), "seed": c.seed},
        "stats": {
            "prompt_tokens": c.prompt_tokens,
            "completion_tokens": len(c.tokens),
            "time_to_first_token_s": _round(c.time_to_first_token),
            "tokens_per_second": _round(c.tokens_per_second),
        },
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def renderer(json_lines: bool, only_new: bool):
    return JsonRenderer() if json_lines else TextRenderer(only_new)
