"""One interface for where a model runs, three implementations: in this process, on the warm server
(autocomplete.serve), on an OpenAI-compatible server (--api). The Python API (autocomplete.backend.model) stands on
it; each takes how to generate (autocomplete.settings.Params, frozen) and a `check` that raises to stop the work
(the caller went away).

    complete(prompt, params, on_piece, check) -> Completion   (pieces streamed as they come; joined, the completion)
    suggest(prefix, params, n, words, check, reads) -> Found
    explain(prompt, params, temperatures, on_start, on_step, on_word) -> (Completion, its steps): every step's
        candidates and odds (autocomplete.text.explain), each handed over as it is taken
    name, engine: the model's name, and what runs it ("onnx", "torch"; None over --api, where the server doesn't say)
    local: whether the model runs in this process (its callers share it: one call at a time; no network to wait on)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from autocomplete.cancel import Check
from autocomplete.settings import Params, Placement, Settings
from autocomplete.text.records import Completion, from_record
from autocomplete.text.suggestions import Found

if TYPE_CHECKING:
    from autocomplete.engine.api import Api
    from autocomplete.engine.models import LoadedModel


class Backend(Protocol):
    name: str
    engine: str | None
    local: bool

    def complete(self, prompt: str, params: Params, on_piece: Callable[[str], None], check: Check) -> Completion:
        ...

    def suggest(self, prefix: str, params: Params, n: int, words: int, check: Check,
                reads: int | None) -> Found:
        ...

    def explain(self, prompt: str, params: Params, temperatures: list[float], on_start=None, on_step=None,
                on_word=None) -> tuple[Completion, list]:
        ...


class ServerGone(Exception):
    """The warm server went away (stopped, idled out) before it answered: nothing was streamed; run in process."""


class InProcess:
    local = True

    def __init__(self, lm: LoadedModel):
        self.lm, self.name, self.engine = lm, lm.name, lm.engine.name

    def complete(self, prompt: str, params: Params, on_piece: Callable[[str], None], check: Check) -> Completion:
        from autocomplete.text.complete import complete  # loads numpy

        return complete(self.lm, prompt, params, on_piece, lambda logits, token, allowed: check())

    def suggest(self, prefix: str, params: Params, n: int, words: int, check: Check,
                reads: int | None) -> Found:
        from autocomplete.text.suggest import suggest  # loads numpy

        return suggest(self.lm, prefix, params, n, words, check=check, reads=reads)

    def explain(self, prompt: str, params: Params, temperatures: list[float], on_start=None, on_step=None,
                on_word=None) -> tuple[Completion, list]:
        from autocomplete.text.explain import steps_of  # loads numpy

        return steps_of(self.lm, prompt, params, temperatures, on_start, on_step, on_word)


class Served:
    """The warm server for a placement. A request it doesn't answer raises ServerGone before anything is streamed."""

    local = False

    def __init__(self, where: Placement, name: str, engine: str | None):
        self.where, self.name, self.engine = where, name, engine

    @classmethod
    def find(cls, where: Placement) -> Served | None:
        from autocomplete.serve import client  # start-up time

        status = client.status(*where)
        return None if status is None else cls(where, status["model"], status.get("engine"))

    def complete(self, prompt: str, params: Params, on_piece: Callable[[str], None], check: Check) -> Completion:
        from autocomplete.serve import client  # start-up time

        def piece(text: str) -> None:
            check()  # what it raises closes the connection, which cancels the request there
            on_piece(text)

        model, device, precision, engine = self.where
        done = client.complete(model, prompt, params.wire(), piece, device, precision, engine)
        if done is None:
            raise ServerGone
        return from_record(done)

    def suggest(self, prefix: str, params: Params, n: int, words: int, check: Check,
                reads: int | None) -> Found:
        from autocomplete.serve import client  # start-up time

        check()
        model, device, precision, engine = self.where
        reply = client.suggest(model, prefix, params.wire(), n, words, device, precision, engine,
                               keystroke=reads is not None)
        if reply is None:
            raise ServerGone
        return Found.from_wire(reply)

    def explain(self, prompt: str, params: Params, temperatures: list[float], on_start=None, on_step=None,
                on_word=None) -> tuple[Completion, list]:
        """Every step's numbers are read here: the server doesn't send them. The model it serves, loaded here."""
        from autocomplete.engine import models  # start-up time

        here = InProcess(models.load(*self.where))
        return here.explain(prompt, params, temperatures, on_start, on_step, on_word)


class OverApi:
    local = False

    def __init__(self, api: Api, name: str):
        self.api, self.name, self.engine = api, name, None

    @classmethod
    def connect(cls, base: str, model: str | None) -> OverApi:
        """The server at `base` (…/v1) and the model asked for there (None: the one it serves, if only one)."""
        from autocomplete.engine.api import Api  # start-up time

        api = Api(base)
        return cls(api, api.model(model))

    def complete(self, prompt: str, params: Params, on_piece: Callable[[str], None], check: Check) -> Completion:
        from autocomplete.text import remote  # loads numpy

        return remote.complete(self.api, self.name, prompt, params, on_piece, check)

    def suggest(self, prefix: str, params: Params, n: int, words: int, check: Check,
                reads: int | None) -> Found:
        from autocomplete.text import remote  # loads numpy

        check()
        return remote.suggest(self.api, self.name, prefix, params, n, words)

    def explain(self, prompt: str, params: Params, temperatures: list[float], on_start=None, on_step=None,
                on_word=None) -> tuple[Completion, list]:
        from autocomplete.text import remote_explain  # loads numpy

        return remote_explain.run(self, prompt, params, temperatures, on_start=on_start, on_step=on_step,
                                  on_word=on_word)


def choose(settings: Settings) -> Backend | None:
    """Where the settings say to run: over --api, or the warm server serving this model (unless --no-server); None:
    in this process (the caller loads the model: UserError there says why it can't)."""
    if settings.api:
        return OverApi.connect(settings.api, settings.model)
    if settings.no_server:
        return None
    return Served.find(settings.placement())


def loaded(settings: Settings) -> LoadedModel:
    """The model the settings name, loaded in this process (once: models.load keeps it)."""
    from autocomplete.engine import models  # start-up time

    return models.load(settings.model, settings.device, settings.precision, settings.engine)


def in_process(settings: Settings) -> InProcess:
    return InProcess(loaded(settings))
