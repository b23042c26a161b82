"""--explain: watch the next-token loop. For every step, the likeliest next tokens with their probability at
T = 1 (the model's own) beside each temperature asked for, the token picked, and the entropy.

Probabilities are softmax(logits / T) over the whole vocabulary, so at each T they sum to 1; the token itself is
drawn with all the settings (top-k and top-p too), exactly as a normal completion would. (Over --api, the same
display is built from the server's top alternatives: autocomplete.ui.api_explain.)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from autocomplete.settings import Settings
from autocomplete.terminal import stdout_console, visible
from autocomplete.text.complete import complete
from autocomplete.text.records import Completion, record as completion_record

if TYPE_CHECKING:  # the --api path uses the display, not the model
    import numpy as np

    from autocomplete.engine.models import LoadedModel

TOP = 8


@dataclass
class Candidate:
    token: int | None  # None over --api: ids don't travel
    text: str
    logit: float  # over --api, the log-probability the server sent
    probability: dict[float, float]  # temperature -> probability


@dataclass
class Step:
    candidates: list[Candidate]
    picked: int | None
    picked_text: str
    entropy: dict[float, float]  # temperature -> entropy in bits
    allowed: int | None = None  # token healing: how many tokens fit the typed letters (None: any token may come)


def distribution(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) over the full vocabulary; T = 0 puts everything on the argmax."""
    from autocomplete.text.sample import probabilities  # loads numpy

    return probabilities(logits, temperature)


def entropy_bits(p: np.ndarray) -> float:
    import numpy as np

    p = p[p > 0].astype(np.float64)
    return max(0.0, float(-(p * np.log2(p)).sum()))  # no "-0.00" for a one-hot


def temperatures_shown(asked: list[float]) -> list[float]:
    """T = 1 first (the model's own distribution), then the ones asked for, in the order given."""
    return list(dict.fromkeys([1.0, *asked]))


def view(lm: LoadedModel, logits: np.ndarray, picked: int, temperatures: list[float], top: int = TOP,
         allowed: np.ndarray | None = None) -> Step:
    """One step. With token healing (`allowed` given) the logits of the tokens that don't fit the typed letters
    are -inf: the probabilities shown are over the tokens that fit, as the sampler draws them."""
    shown = temperatures_shown(temperatures)
    dists = {t: distribution(logits, t) for t in shown}
    top = min(top, logits.shape[-1] if allowed is None else len(allowed))
    import numpy as np

    order = np.argsort(-logits, kind="stable")[:top].tolist()
    if picked not in order:
        order.append(picked)  # a sampled outsider still gets its row
    candidates = [Candidate(i, lm.decode([i]), float(logits[i]), {t: float(d[i]) for t, d in dists.items()})
                  for i in order]
    return Step(candidates, picked, lm.decode([picked]), {t: entropy_bits(d) for t, d in dists.items()},
                None if allowed is None else len(allowed))


def explain(lm: LoadedModel, prompt: str, settings: Settings, temperatures: list[float],
            json_lines: bool) -> Completion:
    """Generate as usual (at the first temperature), showing every step as it happens."""
    from autocomplete.text.prompt import prepare  # loads numpy

    steps: list[Step] = []
    read = prepare(lm, prompt, settings.style, settings.examples, settings.max_tokens)
    typed = read.healing.text if read.healing else ""
    printer = None if json_lines else StepPrinter(prompt, temperatures_shown(temperatures), read.style, typed)

    def observe(logits: np.ndarray, token: int, allowed: np.ndarray | None) -> None:
        steps.append(view(lm, logits, token, temperatures, allowed=allowed))
        if printer:
            printer.show(steps[-1], len(steps))

    def on_word(word) -> None:
        if printer:
            printer.show_word(word)

    done = complete(lm, prompt, settings, lambda piece: None, observe=observe, read=read, on_word=on_word)
    finish(done, lm.name, settings, temperatures, steps, printer, lm.engine.name)
    return done


def next_step(lm: LoadedModel, prompt: str, settings: Settings, top: int = TOP,
              check: Callable[[], None] = lambda: None) -> dict:
    """The odds of the token after `prompt`, once the typed word is finished as a completion finishes it (as a whole
    word, or else token by token: those steps come first): the --explain --json record of a completion stopped
    after the one step past the typed word (the web page's panel, autocomplete.ui.web). Each token is drawn with
    the settings, as a completion would draw it. check: called before every forward; what it raises ends it."""
    import numpy as np

    from autocomplete.text.prompt import prepare  # loads numpy
    from autocomplete.text.sample import generate, new_seed  # loads numpy
    from autocomplete.text.word import MAX_TOKENS, start  # loads numpy

    read = prepare(lm, prompt, settings.style, settings.examples, MAX_TOKENS + 1, quiet=True)
    seed = settings.seed if settings.seed is not None else new_seed()
    rng = np.random.default_rng(seed)
    check()
    begin = start(lm, read, settings.temperature, rng, check)
    steps: list[Step] = []

    def observe(logits: np.ndarray, token: int, allowed: np.ndarray | None) -> None:
        steps.append(view(lm, logits, token, [settings.temperature], top, allowed))
        check()

    new = list(begin.given)
    for token in generate(lm.engine, begin.ids, read.max_new, settings.temperature, settings.top_k, settings.top_p,
                          lm.eos_ids, rng, observe, begin.after, begin.allowed):
        new.append(token)
        if steps[-1].allowed is None or token in lm.eos_ids:  # past the typed letters (or the text ended)
            break
    done = Completion(prompt=prompt, completion=read.shown(new), tokens=new,
                      finish_reason="eos" if new and new[-1] in lm.eos_ids else "length",
                      prompt_tokens=read.prompt_tokens, seed=seed, time_to_first_token=None, tokens_per_second=None,
                      style=read.style, word=begin.word)
    return record(done, lm.name, settings, [settings.temperature], steps, lm.engine.name)


def finish(done: Completion, model: str, settings: Settings, temperatures: list[float], steps: list[Step],
           printer: StepPrinter | None, engine: str | None = None) -> None:
    """The completion after its steps, or one JSON record holding both."""
    if printer:
        printer.finish(done)
    else:
        line = json.dumps(record(done, model, settings, temperatures, steps, engine), ensure_ascii=False)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def record(done: Completion, model: str, settings: Settings, temperatures: list[float], steps: list[Step],
           engine: str | None = None) -> dict:
    word = done.word
    return {
        **completion_record(done, model, settings, engine),
        "temperatures": temperatures_shown(temperatures),
        "word": None if word is None else {
            "text": word.text, "tokens": word.tokens if done.tokens is not None else None, "exact": word.exact,
            "prefixes_read": word.expansions,
            "candidates": [{"text": text, "probability": p} for text, p in word.candidates]},
        "steps": [
            {
                "picked": {"token": s.picked, "text": s.picked_text},
                "allowed_tokens": s.allowed,
                "entropy_bits": {str(t): round(h, 4) for t, h in s.entropy.items()},
                "candidates": [
                    {"token": c.token, "text": c.text,
                     ("logit" if c.token is not None else "logprob"): round(c.logit, 4),
                     "probability": {str(t): p for t, p in c.probability.items()}}
                    for c in s.candidates
                ],
            }
            for s in steps
        ],
    }


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
