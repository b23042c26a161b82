"""How a completion reaches stdout: coloured on a terminal, plain text in a pipe, or one JSON object a line."""

from __future__ import annotations

import json
import re
import sys
from typing import TextIO

from autocomplete import terminal
from autocomplete.settings import Params
from autocomplete.terminal import stdout_console, visible
from autocomplete.text.records import Completion, record
from autocomplete.text.suggestions import Found


class TextRenderer:
    """The prompt (dim on a terminal) then the completion (highlighted) as it streams, then a newline. On a
    terminal, control characters in either are shown, not obeyed: a model (or a server) could write any."""

    json = False

    def __init__(self, only_new: bool = False, file: TextIO | None = None):
        self.only_new = only_new
        self.file = file or sys.stdout
        self.console = None
        self._noted: set[str] = set()  # each note once a run: --each-line fed keystrokes would say it every line
        if self.file.isatty():
            self.console = stdout_console(file=self.file, highlight=False, soft_wrap=True)  # honours NO_COLOR

    def start(self, prompt: str) -> None:
        if not self.only_new:
            self._write(prompt, "dim")

    def piece(self, text: str) -> None:
        self._write(text, "bold cyan")

    def finish(self, completion: Completion, model: str, params: Params, engine: str | None = None) -> None:
        self._write("\n", None)

    def blank(self) -> None:
        self._write("\n", None)

    def suggestions(self, prefix: str, found: Found, model: str, params: Params, words: int, style: str,
                    engine: str | None = None) -> None:
        """A search box's dropdown: each suggestion with its probability."""
        from rich.table import Table
        from rich.text import Text

        shown = prefix if len(prefix) <= 40 else "…" + prefix[-39:]
        # Line breaks and runs of spaces as one space; the space the prefix ends with stays ("new " + "york city").
        shown = "" if self.only_new else re.sub(r"\s+", " ", shown).lstrip()
        table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2))
        table.add_column(no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        for s in found:
            table.add_row(Text(visible(shown), style="dim") + Text(visible(s.completion), style="bold cyan"),
                          f"{s.probability:.1%}")
        console = self.console or stdout_console(file=self.file, highlight=False, color_system=None, width=200)
        if found:
            console.print(table)
        else:
            console.print(Text("(no suggestions)", style="dim"))
        self.file.flush()
        if not found.exact and found.note and found.note not in self._noted:
            self._noted.add(found.note)
            terminal.notice(found.note)

    def _write(self, text: str, style: str | None) -> None:
        if self.console is not None:
            self.console.out(visible(text), style=style, highlight=False, end="")
            self.console.file.flush()
        else:
            self.file.write(text)
            self.file.flush()


class JsonRenderer:
    """JSON Lines: one object per completion, written when it is done."""

    json = True

    def __init__(self, file: TextIO | None = None):
        self.file = file or sys.stdout

    def start(self, prompt: str) -> None:
        pass

    def piece(self, text: str) -> None:
        pass

    def finish(self, completion: Completion, model: str, params: Params, engine: str | None = None) -> None:
        self._line(record(completion, model, params, engine))

    def blank(self) -> None:
        pass  # a blank input line has nothing to report

    def suggestions(self, prefix: str, found: Found, model: str, params: Params, words: int, style: str,
                    engine: str | None = None) -> None:
        self._line({
            "prefix": prefix,
            "suggestions": found.listed(prefix),
            "model": model,
            "engine": engine,
            "style": style,
            "exact": found.exact,
            "settings": {**params.shown(), "suggest": len(found), "words": words},
        })

    def _line(self, obj: dict) -> None:
        self.file.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self.file.flush()


def renderer(json_lines: bool, only_new: bool):
    return JsonRenderer() if json_lines else TextRenderer(only_new)
