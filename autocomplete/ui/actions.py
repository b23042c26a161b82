"""What to do with one prompt (complete it, list suggestions, or explain each step) wherever the model runs (one
backend: autocomplete.backend.backends), shared by the CLI and the REPL so both behave the same."""

from __future__ import annotations

from autocomplete.backend.backends import Backend, choose
from autocomplete.cancel import CtrlC
from autocomplete.errors import UserError
from autocomplete.settings import Settings
from autocomplete.text import frames

def elsewhere(settings: Settings) -> Backend | None:
    """The --api engine, or the warm server serving this model (not for --explain, which runs here); None: load the
    model in this process."""
    return choose(settings) if settings.api or settings.servable() else None


def run(backend: Backend, text: str, settings: Settings, out, keystroke: bool = False) -> bool:
    """Complete, suggest or explain `text` as the settings say, writing to the renderer `out`. Returns whether
    Ctrl-C cut it short. On a warm server that has gone, ServerGone (nothing written): the caller loads the model.
    keystroke: `text` is a keystroke of a query being typed, so its list is bounded as the REPL's (KEYSTROKE_READS)."""
    if settings.explain:
        return _explain(backend, text, settings, out)
    with CtrlC() as interrupted:  # the work's check: a Ctrl-C Python lost is raised again at its next step
        return _suggest_or_complete(backend, text, settings, out, keystroke, interrupted)


def _suggest_or_complete(backend: Backend, text: str, settings: Settings, out, keystroke: bool, check) -> bool:
    params = settings.params()
    if settings.suggest:
        reads = None
        if keystroke:
            from autocomplete.text.suggest import KEYSTROKE_READS  # loads numpy

            reads = KEYSTROKE_READS
        found = backend.suggest(text, params, settings.suggest, settings.words, check, reads)
        out.suggestions(text, found, backend.name, params, settings.words, frames.resolve(params.style, text),
                        backend.engine)
        return False
    started = False

    def on_piece(piece: str) -> None:
        nonlocal started
        if not started:  # the prompt shows with the first piece: an error (or a fallback) comes alone
            out.start(text)
            started = True
        out.piece(piece)

    try:
        done = backend.complete(text, params, on_piece, check)
    except KeyboardInterrupt:  # on the warm server: the client hung up, which cancels the request there
        out.blank()
        return True
    except UserError:
        if started:
            out.blank()  # what was streamed stays, on a line of its own; the error follows on stderr
        raise
    if not started:
        out.start(text)
    out.finish(done, backend.name, params, backend.engine)
    return done.interrupted


def _explain(backend: Backend, text: str, settings: Settings, out) -> bool:
    """--explain: every step shown as it is taken (or one --explain --json record at the end)."""
    from autocomplete.text.explain import temperatures_shown  # loads numpy
    from autocomplete.ui.explain import StepPrinter, finish  # (with it)

    temperatures = settings.temperatures or [settings.temperature]
    printer = None

    def start(style: str, typed: str, about: str, score: str) -> None:
        nonlocal printer
        if not out.json:
            printer = StepPrinter(text, temperatures_shown(temperatures), style, typed, score, about)

    params = settings.params()
    done, steps = backend.explain(text, params, temperatures, start,
                                  lambda step, number: printer and printer.show(step, number),
                                  lambda word: printer and printer.show_word(word))
    finish(done, backend.name, params, temperatures, steps, printer, backend.engine)
    return done.interrupted
