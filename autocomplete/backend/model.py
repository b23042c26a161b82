"""autocomplete's Python API: what the command does, for a script, a notebook or a web app.

    import autocomplete

    lm = autocomplete.load()                          # the default model; the warm server's, if one serves it
    lm.complete("san", temperature=0).text            # "san francisco airport"
    for piece in lm.stream("the best way to learn python is"):
        print(piece, end="", flush=True)              # word by word, as the command prints them
    [(s.text, s.probability) for s in lm.suggest("new yo", n=3)]
    lm.explain("san", temperatures=[0.5, 2])["steps"]  # each step's odds, as --explain --json gives them

A Completion's to_json() is the record `--json` prints; a Suggestion's is one entry of `--suggest N --json`'s list.
Parameters go as keywords or as one Params (frozen; its defaults are the command's), checked as the options are:
ValueError says what is wrong. What can't be done (a model that doesn't load, a server that fails) raises
autocomplete.errors.UserError with the line the command would print.
"""

from __future__ import annotations

import copy
import dataclasses
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from autocomplete.backend.backends import Backend, ServerGone, choose, in_process
from autocomplete.cancel import Cancelled, never
from autocomplete.settings import DEVICES, ENGINES, PRECISIONS, Params, Settings
from autocomplete.text.records import record

_DEFAULTS = Settings()


@dataclass(frozen=True)
class Completion:
    """A finished completion: `record` is what `autocomplete --json` prints for it."""

    record: dict

    @property
    def prompt(self) -> str:
        return self.record["prompt"]

    @property
    def completion(self) -> str:
        """The generated text only: the streamed pieces, joined."""
        return self.record["completion"]

    @property
    def text(self) -> str:
        """The prompt and its completion: what the command prints."""
        return self.prompt + self.completion

    @property
    def finish_reason(self) -> str:
        return self.record["finish_reason"]

    def to_json(self) -> dict:
        return copy.deepcopy(self.record)


@dataclass(frozen=True)
class Suggestion:
    text: str  # the prefix and its completion
    completion: str
    probability: float
    tokens: list[int] | None  # None over an OpenAI-compatible server: token ids don't travel

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


class Model:
    """A model ready to complete, wherever it runs. One call at a time (calls from other threads wait)."""

    def __init__(self, backend: Backend, settings: Settings):
        self._backend, self._settings = backend, settings
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._backend.name

    @property
    def engine(self) -> str | None:
        """What runs it: "onnx" or "torch" (here or on the warm server); None on an OpenAI-compatible server."""
        return self._backend.engine

    def complete(self, prompt: str, params: Params | None = None, **overrides: Any) -> Completion:
        params = _params(params, overrides)
        done, backend = self._run(lambda backend: backend.complete(prompt, params, lambda piece: None, never))
        return Completion(record(done, backend.name, params, backend.engine))

    def stream(self, prompt: str, params: Params | None = None, **overrides: Any) -> Iterator[str]:
        """The completion's pieces as they come (whole words; joined, the completion). Leaving the loop early stops
        the generation at its next token."""
        params = _params(params, overrides)
        pieces: queue.SimpleQueue = queue.SimpleQueue()
        stopped = threading.Event()

        def check() -> None:
            if stopped.is_set():
                raise Cancelled

        def work() -> None:
            try:
                self._run(lambda backend: backend.complete(prompt, params, pieces.put, check))
                pieces.put(_END)
            except BaseException as error:  # handed to the caller's thread, which raises it there
                pieces.put(_Failed(error))

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        try:
            while (item := pieces.get()) is not _END:
                if isinstance(item, _Failed):
                    if isinstance(item.error, Cancelled):
                        return
                    raise item.error
                yield item
        finally:
            stopped.set()
            worker.join()

    def suggest(self, prefix: str, n: int = 5, words: int = 3, params: Params | None = None,
                **overrides: Any) -> list[Suggestion]:
        """The n likeliest distinct completions of `prefix` (at most `words` words), best first, as `--suggest N`
        lists them."""
        if n < 1 or words < 1:
            raise ValueError("n and words must be 1 or more")
        params = _params(params, overrides)
        found, _ = self._run(lambda backend: backend.suggest(prefix, params, n, words, never, None))
        return [Suggestion(**entry) for entry in found.listed(prefix)]

    def explain(self, prompt: str, temperatures: list[float] | None = None, params: Params | None = None,
                **overrides: Any) -> dict:
        """The record `--explain --json` prints: the completion (drawn at the first temperature, as the command
        does) and, for every step, the likeliest tokens with their probability at T = 1 and at each temperature
        asked for (the parameters' one by default), the pick and the entropy."""
        params = _params(params, overrides)
        asked = [Params(temperature=t).checked().temperature for t in temperatures or [params.temperature]]
        params = dataclasses.replace(params, temperature=asked[0])  # (each checked as -t is)
        from autocomplete.text.explain import record  # loads numpy

        (done, steps), backend = self._run(lambda backend: backend.explain(prompt, params, asked))
        return record(done, backend.name, params, asked, steps, backend.engine)

    def _run(self, call: Callable[[Backend], Any]) -> tuple[Any, Backend]:
        with self._lock:
            try:
                return call(self._backend), self._backend
            except ServerGone:  # it stopped or idled out: as the command does, load the model here instead
                self._backend = in_process(self._settings)
                return call(self._backend), self._backend


def load(model: str | None = None, *, api: str | None = None, engine: str = "auto", precision: str = "auto",
         device: str = "auto", server: bool = True) -> Model:
    """The model the command would run for these options: `-m MODEL`, `--api URL` (an OpenAI-compatible server's
    base, …/v1), `--engine`, `--precision`, `--device`; server=False is `--no-server`. None: the default model."""
    for name, value, choices in (("engine", engine, ENGINES), ("precision", precision, PRECISIONS),
                                 ("device", device, DEVICES)):
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    settings = dataclasses.replace(_DEFAULTS, model=model, api=api, engine=engine, precision=precision,
                                   device=device, no_server=not server)
    return Model(choose(settings) or in_process(settings), settings)


def _params(params: Params | None, overrides: dict) -> Params:
    unknown = set(overrides) - {f.name for f in dataclasses.fields(Params)}
    if unknown:
        raise TypeError(f"unknown parameter {sorted(unknown)[0]!r} (the parameters: "
                        f"{', '.join(f.name for f in dataclasses.fields(Params))})")
    return dataclasses.replace(params or Params(), **overrides).checked()


@dataclass
class _Failed:
    error: BaseException


_END = object()
