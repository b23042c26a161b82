"""What to do with one prompt (complete it, list suggestions, or explain each step), shared by the CLI and the
REPL so both behave the same."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from autocomplete.errors import UserError
from autocomplete.settings import Placement, Settings
from autocomplete.text import frames
from autocomplete.text.records import from_record
from autocomplete.text.suggestions import Found, Suggestion

if TYPE_CHECKING:  # the warm-server path never loads a model here
    from autocomplete.engine.models import LoadedModel


@dataclass
class Served:
    """A warm server serving what the options ask for: where the client finds it, and the model it loaded."""

    where: Placement
    name: str

    def stream(self, text: str, settings: Settings, on_piece) -> bool:
        """Complete `text` there, streaming pieces to on_piece; False if the server has gone."""
        from autocomplete.serve import client  # start-up time

        model, device, precision, engine = self.where
        return client.complete(model, text, settings.generation(), on_piece, device, precision, engine) is not None


@dataclass
class Remote:
    """An OpenAI-compatible server (--api) and the model asked for there."""

    api: object  # autocomplete.engine.api.Api
    name: str

    @classmethod
    def of(cls, settings: Settings) -> Remote:
        from autocomplete.engine.api import Api  # start-up time

        api = Api(settings.api)
        return cls(api, api.model(settings.model))

    def stream(self, text: str, settings: Settings, on_piece) -> bool:
        from autocomplete.text import remote  # loads numpy

        remote.complete(self.api, self.name, text, settings, on_piece)
        return True


def load(settings: Settings) -> LoadedModel:
    """The model the settings name, loaded in this process (once: models.load keeps it)."""
    from autocomplete.engine import models  # start-up time

    return models.load(settings.model, settings.device, settings.precision, settings.engine)


def served(settings: Settings) -> Served | None:
    """The warm server for these settings, or None (none runs, or --no-server)."""
    if settings.no_server:
        return None
    from autocomplete.serve import client  # start-up time

    found = client.status(*settings.placement())
    return None if found is None else Served(settings.placement(), found["model"])


def run_on_server(text: str, settings: Settings, out) -> bool | None:
    """Like run(), on the warm server for this model. None when no server answered (nothing was written);
    otherwise whether Ctrl-C cut it short."""
    from autocomplete.serve import client  # start-up time

    where = settings.placement()
    if settings.suggest:
        reply = client.suggest(where[0], text, settings.generation(), settings.suggest, settings.words, *where[1:])
        if reply is None:
            return None

        found = Found(Suggestion(**s) for s in reply["suggestions"])
        found.exact = reply["exact"]
        out.suggestions(text, found, reply["model"], settings, settings.words, reply["style"], reply.get("engine"))
        return False
    started = False

    def on_piece(piece: str) -> None:
        nonlocal started
        if not started:  # the prompt is shown once a server answers, so a fallback never shows it twice
            out.start(text)
            started = True
        out.piece(piece)

    try:
        record = client.complete(where[0], text, settings.generation(), on_piece, *where[1:])
    except KeyboardInterrupt:  # the client hung up, which cancels the request on the server
        out.blank()
        return True
    if record is None:
        return None
    if not started:
        out.start(text)
    out.finish(from_record(record), record["model"], settings, record.get("engine"))
    return False


def run_over_api(remote: Remote, text: str, settings: Settings, out) -> bool:
    """Like run(), on an OpenAI-compatible server (autocomplete.engine.api). Returns whether Ctrl-C cut it short."""
    from autocomplete.text import remote as over_api  # loads numpy

    if settings.explain:
        from autocomplete.ui import api_explain  # loads numpy

        return api_explain.explain(remote, text, settings, settings.temperatures or [settings.temperature],
                                   out.json).interrupted
    if settings.suggest:
        found = over_api.suggest(remote.api, remote.name, text, settings, settings.suggest, settings.words)
        out.suggestions(text, found, remote.name, settings, settings.words, frames.resolve(settings.style, text))
        return False
    started = False

    def on_piece(piece: str) -> None:
        nonlocal started
        if not started:  # the prompt shows once the server answers: an error comes alone
            out.start(text)
            started = True
        out.piece(piece)

    try:
        done = over_api.complete(remote.api, remote.name, text, settings, on_piece)
    except UserError:
        if started:
            out.blank()  # what was streamed stays, on a line of its own; the error follows on stderr
        raise
    if not started:
        out.start(text)
    out.finish(done, remote.name, settings)
    return done.interrupted


def run(lm: LoadedModel, text: str, settings: Settings, out) -> bool:
    """Complete, suggest or explain `text` as the settings say, writing to the renderer `out`. Returns whether
    Ctrl-C cut it short."""
    if settings.suggest:
        from autocomplete.text.suggest import suggest  # loads numpy

        found = suggest(lm, text, settings, settings.suggest, settings.words)
        out.suggestions(text, found, lm.name, settings, settings.words, frames.resolve(settings.style, text),
                        lm.engine.name)
        return False
    if settings.explain:
        from autocomplete.ui.explain import explain  # start-up time

        return explain(lm, text, settings, settings.temperatures or [settings.temperature], out.json).interrupted
    from autocomplete.text.complete import complete  # start-up time

    out.start(text)
    done = complete(lm, text, settings, out.piece)
    out.finish(done, lm.name, settings, lm.engine.name)
    return done.interrupted
