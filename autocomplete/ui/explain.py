"""--explain: watch the next-token loop. For every step, the likeliest next tokens with their probability at
T = 1 (the model's own) beside each temperature asked for, the token picked, and the entropy.

Probabilities are softmax(logits / T) over the whole vocabulary, so at each T they sum to 1; the token itself is
drawn with all the settings (top-k and top-p too), exactly as a normal completion would. The numbers are
autocomplete.text.explain's (over --api, autocomplete.text.remote_explain's); this module shows them.
"""

from __future__ import annotations

import json
import sys

from autocomplete.settings import Params
from autocomplete.terminal import stdout_console, visible
from autocomplete.text.explain import Step, record
from autocomplete.text.records import Completion

def finish(done: Completion, model: str, params: Params, temperatures: list[float], steps: list[Step],
           printer: StepPrinter | None, engine: str | None = None) -> None:
    """The completion after its steps, or one JSON record holding both."""
    if printer:
        printer.finish(done)
    else:
        line = json.dumps(record(done, model, params, temperatures, steps, engine), ensure_ascii=False)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class StepPrinter:
    """A Rich table per step: candidates, a bar per temperature, the pick marked. score: the column holding what
    the probabilities come from ("logit" here, "logprob" over --api)."""

    def __init__(self, prompt: str, temperatures: list[float], style: str, typed: str, score: str = "logit",
                 about_api: str = ""):
        from rich.text import Text

        self.console = stdout_console(highlight=False)
        self.temperatures, self.score = temperatures, score
        self.text = prompt[: len(prompt) - len(typed)] if typed and prompt.endswith(typed) else prompt
        about = "query (a search query, after hidden example queries)" if style == "query" else "text"
        if typed:
            about += f"; the typed {typed!r} is finished as a whole word"
        self.console.print(Text(f"style {about}{about_api}\n", style="dim"))

    def show(self, step: Step, number: int) -> None:
        from rich.bar import Bar
        from rich.table import Table
        from rich.text import Text

        title = f"step {number}: …{visible(self.text[-50:])}"
        if step.allowed is not None:
            title += f"   (only the {step.allowed} tokens that fit the typed letters)"
        table = Table(title=Text(title, style="dim"), title_justify="left", box=None, pad_edge=False)
        # token and logit take ~24 columns; the rest is shared by a percentage and a bar per temperature
        bar = max(4, min(20, (self.console.width - 26) // len(self.temperatures) - 9))
        table.add_column("", no_wrap=True)
        table.add_column("token", no_wrap=True, max_width=14, overflow="ellipsis")
        table.add_column(self.score, justify="right", no_wrap=True)
        for t in self.temperatures:
            table.add_column(f"T={t:g}", justify="right", no_wrap=True)
            table.add_column("", width=bar, no_wrap=True)
        for c in step.candidates:
            picked = c.token == step.picked and c.text == step.picked_text
            cells = ["→" if picked else "", repr(c.text), f"{c.logit:.2f}"]
            for t in self.temperatures:
                p = c.probability[t]
                cells += [f"{p:6.1%}", Bar(1.0, 0, p, width=bar, color="cyan" if t == 1.0 else "magenta")]
            table.add_row(*cells, style="bold" if picked else None)
        self.console.print(table)
        entropy = "  ".join(f"T={t:g}: {h:.2f}" for t, h in step.entropy.items())
        self.console.print(Text(f"picked {step.picked_text!r}   entropy (bits) {entropy}\n", style="dim"))
        self.text += step.picked_text

    def show_word(self, word) -> None:
        """The whole-word choice (autocomplete.text.word): the likeliest words the typed letters can become, each
        summed over its tokenizations and ended by a word boundary, at T = 1."""
        from rich.table import Table
        from rich.text import Text

        title = f"the typed word, finished: …{visible(self.text[-50:])}"
        if not word.exact:
            title += f"   (the search stopped at its bound, {word.expansions} prefixes: the list may be incomplete)"
        self.console.print(Text(title, style="dim"))
        table = Table(box=None, pad_edge=False)
        table.add_column("", no_wrap=True)
        table.add_column("word", no_wrap=True)
        table.add_column("T=1", justify="right", no_wrap=True)
        for text, p in word.candidates:
            picked = text == word.text
            table.add_row("→" if picked else "", visible(repr(text)), f"{p:6.2%}", style="bold" if picked else None)
        self.console.print(table)
        self.console.print(Text(f"picked {visible(repr(word.text))}\n", style="dim"))
        self.text += word.text

    def finish(self, done: Completion) -> None:
        from rich.text import Text

        shown = Text(visible(done.prompt), style="dim") + Text(visible(done.completion), style="bold cyan")
        self.console.print(shown)
