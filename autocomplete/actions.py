"""What to do with one prompt (complete it, list suggestions, or explain each step), shared by the CLI and the
REPL so both behave the same."""

from __future__ import annotations

from dataclasses import dataclass, field

from autocomplete.models import LoadedModel
from autocomplete.settings import Settings


@dataclass
class Mode:
    suggest: int = 0  # > 0: list this many suggestions instead of completing
    words: int = 3  # longest suggestion, in words
    explain: bool = False
    temperatures: list[float] = field(default_factory=list)  # shown side by side by --explain


@dataclass
class Options:
    """Everything the command line asked for that applies to each prompt, in the CLI and the REPL alike."""

    settings: Settings
    mode: Mode
    model: str | None = None  # None: the default model (which may fall back to the starter)
    device: str = "auto"
    precision: str = "fp32"
    json_lines: bool = False
    only_new: bool = False

    def load(self) -> LoadedModel:
        from autocomplete import models

        return models.load(self.model, self.device, self.precision)


def run(lm: LoadedModel, text: str, settings: Settings, mode: Mode, out) -> bool:
    """Do `mode` with `text`, writing to the renderer `out`. Returns whether Ctrl-C cut it short."""
    if mode.suggest:
        from autocomplete.suggest import suggest

        out.suggestions(text, suggest(lm, text, settings, mode.suggest, mode.words), lm.name, settings, mode.words)
        return False
    if mode.explain:
        from autocomplete.explain import explain

        return explain(lm, text, settings, mode.temperatures or [settings.temperature], out.json).interrupted
    from autocomplete.complete import complete

    out.start(text)
    done = complete(lm, text, settings, out.piece)
    out.finish(done, lm.name, settings)
    return done.interrupted
