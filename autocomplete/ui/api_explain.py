"""--explain over --api, shown: the steps autocomplete.text.remote_explain takes from the server, in
autocomplete.ui.explain's display."""

from __future__ import annotations

from autocomplete.settings import Settings
from autocomplete.text.records import Completion
from autocomplete.text.remote_explain import run
from autocomplete.text.explain import temperatures_shown
from autocomplete.ui.explain import StepPrinter, finish


def explain(remote, prompt: str, settings: Settings, temperatures: list[float], json_lines: bool) -> Completion:
    printer = None

    def start(style: str, typed: str, listed: int) -> None:
        nonlocal printer
        if not json_lines:
            printer = StepPrinter(prompt, temperatures_shown(temperatures), style, typed, score="logprob",
                                  about_api=f"; from {remote.api.host}'s top {listed} alternatives a step: "
                                            "probabilities approximate")

    done, steps = run(remote, prompt, settings, temperatures, on_start=start,
                      on_step=lambda step, number: printer and printer.show(step, number),
                      on_word=lambda word: printer and printer.show_word(word))
    finish(done, remote.name, settings, temperatures, steps, printer)
    return done
