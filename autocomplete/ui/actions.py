"""What to do with one prompt (complete it, list suggestions, or explain each step), shared by the CLI and the
REPL so both behave the same."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from autocomplete.settings import Settings

if TYPE_CHECKING:  # the warm-server path never loads a model here
    from autocomplete.engine.models import LoadedModel


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
    examples: str | None = None  # --examples FILE, read by the command itself (a server has another directory)
    device: str = "auto"
    precision: str = "fp32"
    json_lines: bool = False
    only_new: bool = False
    server: bool = True  # use a warm server for this model when one is running
    idle_timeout: float = 300  # for a server started from here
    api: str | None = None  # --api: an OpenAI-compatible server's base URL; the model runs there

    def server_key(self) -> str | None:
        """The model as the server knows it: a path made absolute, so `./m` means one model wherever run."""
        if self.model and Path(self.model).expanduser().exists():
            return str(Path(self.model).expanduser().resolve())
        return self.model

    def where(self) -> tuple[str | None, str, str]:
        """What a server must have loaded to serve this command: (model, device, precision), as autocomplete.serve.client
        takes them. int8 with device auto runs on the CPU, as models.load decides."""
        device = "cpu" if self.precision == "int8" and self.device == "auto" else self.device
        return self.server_key(), device, self.precision

    def servable(self) -> bool:
        # The server runs completions and suggestions; --explain runs here.
        return self.server and not self.mode.explain

    def read_examples(self) -> None:
        """Put the --examples file's queries into the settings; a bad file is a usage error."""
        if self.examples is not None and self.settings.examples is None:
            from autocomplete.text.frames import read_examples

            self.settings.examples = read_examples(self.examples)

    def load(self) -> LoadedModel:
        from autocomplete.engine import models

        return models.load(self.model, self.device, self.precision)


@dataclass
class Served:
    """A warm server serving what the options ask for: where the client finds it, and the model it loaded."""

    where: tuple[str | None, str, str]
    name: str

    def stream(self, text: str, settings: Settings, on_piece) -> bool:
        """Complete `text` there, streaming pieces to on_piece; False if the server has gone."""
        from autocomplete.serve import client

        model, device, precision = self.where
        return client.complete(model, text, settings.as_dict(), on_piece, device, precision) is not None


@dataclass
class Remote:
    """An OpenAI-compatible server (--api) and the model asked for there."""

    api: object  # autocomplete.engine.api.Api
    name: str

    @classmethod
    def of(cls, options: Options) -> Remote:
        from autocomplete.engine.api import Api

        api = Api(options.api)
        return cls(api, api.model(options.model))

    def stream(self, text: str, settings: Settings, on_piece) -> bool:
        from autocomplete.engine import api

        api.complete(self.api, self.name, text, settings, on_piece)
        return True


def served(options: Options) -> Served | None:
    """The warm server for these options, or None (none runs, or --no-server)."""
    if not options.server:
        return None
    from autocomplete.serve import client

    found = client.status(*options.where())
    return None if found is None else Served(options.where(), found["model"])


def run_on_server(text: str, options: Options, out) -> bool | None:
    """Like run(), on the warm server for this model. None when no server answered (nothing was written);
    otherwise whether Ctrl-C cut it short."""
    from autocomplete.serve import client
    from autocomplete.ui.render import from_record

    where, settings = options.where(), options.settings
    if options.mode.suggest:
        reply = client.suggest(where[0], text, settings.as_dict(), options.mode.suggest, options.mode.words,
                               *where[1:])
        if reply is None:
            return None
        from autocomplete.text.suggestions import Found, Suggestion

        found = Found(Suggestion(**s) for s in reply["suggestions"])
        found.exact = reply["exact"]
        out.suggestions(text, found, reply["model"], settings, options.mode.words, reply["style"])
        return False
    started = False

    def on_piece(piece: str) -> None:
        nonlocal started
        if not started:  # the prompt is shown once a server answers, so a fallback never shows it twice
            out.start(text)
            started = True
        out.piece(piece)

    try:
        record = client.complete(where[0], text, settings.as_dict(), on_piece, *where[1:])
    except KeyboardInterrupt:  # the client hung up, which cancels the request on the server
        out.blank()
        return True
    if record is None:
        return None
    if not started:
        out.start(text)
    out.finish(from_record(record), record["model"], settings)
    return False


def run_over_api(remote: Remote, text: str, options: Options, out) -> bool:
    """Like run(), on an OpenAI-compatible server (autocomplete.engine.api). Returns whether Ctrl-C cut it short."""
    from autocomplete.engine import api
    from autocomplete.errors import UserError

    if options.mode.explain:
        from autocomplete.ui import api_explain

        return api_explain.explain(remote, text, options.settings,
                                   options.mode.temperatures or [options.settings.temperature], out.json).interrupted
    if options.mode.suggest:
        from autocomplete.text import api_suggest, frames

        found = api_suggest.suggest(remote.api, remote.name, text, options.settings, options.mode.suggest,
                                    options.mode.words)
        out.suggestions(text, found, remote.name, options.settings, options.mode.words,
                        frames.resolve(options.settings.style, text))
        return False
    started = False

    def on_piece(piece: str) -> None:
        nonlocal started
        if not started:  # the prompt shows once the server answers: an error comes alone
            out.start(text)
            started = True
        out.piece(piece)

    try:
        done = api.complete(remote.api, remote.name, text, options.settings, on_piece)
    except UserError:
        if started:
            out.blank()  # what was streamed stays, on a line of its own; the error follows on stderr
        raise
    if not started:
        out.start(text)
    out.finish(done, remote.name, options.settings)
    return done.interrupted


def run(lm: LoadedModel, text: str, settings: Settings, mode: Mode, out) -> bool:
    """Do `mode` with `text`, writing to the renderer `out`. Returns whether Ctrl-C cut it short."""
    if mode.suggest:
        from autocomplete.text import frames
        from autocomplete.text.suggest import suggest

        found = suggest(lm, text, settings, mode.suggest, mode.words)
        out.suggestions(text, found, lm.name, settings, mode.words, frames.resolve(settings.style, text))
        return False
    if mode.explain:
        from autocomplete.ui.explain import explain

        return explain(lm, text, settings, mode.temperatures or [settings.temperature], out.json).interrupted
    from autocomplete.text.complete import complete

    out.start(text)
    done = complete(lm, text, settings, out.piece)
    out.finish(done, lm.name, settings)
    return done.interrupted
