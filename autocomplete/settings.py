"""Settings: the one object a command line becomes (shared by the CLI, the REPL, the servers and the JSON output),
and the checks on its values."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

STOP_RULES = ("line", "sentence", "none")
STYLES = ("auto", "query", "text")
DEVICES = ("auto", "cpu", "cuda", "mps")
# auto: int8 on ONNX Runtime (as faithful as llama.cpp's Q8_0, and faster), fp32 on torch (exact; its int8 is less
# faithful): autocomplete.engine.models.resolved_precision
PRECISIONS = ("auto", "fp32", "int8")
ENGINES = ("auto", "onnx", "torch")  # auto: onnx on the CPU for the models it exports, torch otherwise
DEFAULT_MODEL = "gpt2"


def runs_on(device: str, precision: str) -> str:
    """The device asked for, with auto made the CPU for int8, which runs there only (even on a machine with a GPU)."""
    return "cpu" if precision == "int8" and device == "auto" else device


def env_flag(name: str) -> bool:
    """An on/off environment variable: 1, true, yes, on (any case) mean on; unset, empty, 0, false, no, off mean
    off; anything else is a usage error, so a typo doesn't silently do the opposite."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    from autocomplete.errors import UsageError

    raise UsageError(f"{name} must be 1 or 0 (or true/false, yes/no, on/off), not {os.environ[name]!r}")


GENERATION = ("temperature", "top_k", "top_p", "max_tokens", "seed", "stop", "style", "examples")


@dataclass
class Settings:
    """Everything a command line (or the REPL, or a server request) asks for: the one settings object. The first
    eight fields shape a generation (GENERATION: what a warm server receives and --json shows); the rest say what
    to do with the prompt and where the model runs."""

    # Defaults suit a search box: a short, fairly likely continuation that ends with its sentence.
    temperature: float = 0.7
    top_k: int = 50
    top_p: float = 0.8
    max_tokens: int = 24
    seed: int | None = None
    stop: str = "sentence"
    style: str = "auto"  # query, text, or auto: query for a short one-line prompt (autocomplete.text.frames)
    examples: list[str] | None = None  # the user's example queries for the query style (--examples)
    # what to do with each prompt
    suggest: int = 0  # > 0: list this many suggestions instead of completing
    words: int = 3  # longest suggestion, in words
    explain: bool = False
    temperatures: list[float] = field(default_factory=list)  # shown side by side by --explain
    # the model, and where it runs
    model: str | None = None  # None: the default model (which may fall back to the starter)
    device: str = "auto"
    precision: str = "auto"
    engine: str = "auto"  # onnx (ONNX Runtime, the CPU), torch, or auto (autocomplete.engine.onnx_engine.chosen)
    api: str | None = None  # --api: an OpenAI-compatible server's base URL; the model runs there
    use_server: bool = True  # use a warm server for this model when one is running (--no-server: False)
    idle_timeout: float = 300  # for a server started from here
    # output
    json_lines: bool = False
    only_new: bool = False
    # the command line's own
    prompt: str | None = None
    examples_file: str | None = None  # --examples FILE, read by the command itself (a server has another directory)
    each_line: bool = False
    interactive: bool = False
    list_models: bool = False
    server_action: str | None = None  # --server start|stop|status

    def generation(self) -> dict:
        """The fields that shape a generation, as a warm server takes them."""
        return {name: getattr(self, name) for name in GENERATION}

    def shown(self) -> dict:
        """The settings as --json shows them: the example queries are the user's own file, not repeated."""
        return {k: v for k, v in self.generation().items() if k != "examples"}

    def server_key(self) -> str | None:
        """The model as the server knows it: a path made absolute, so `./m` means one model wherever run."""
        if self.model and Path(self.model).expanduser().exists():
            return str(Path(self.model).expanduser().resolve())
        return self.model

    def where(self) -> tuple[str | None, str, str, str]:
        """What a server must have loaded to serve this: (model, device, precision, engine), as
        autocomplete.serve.client takes them."""
        return self.server_key(), runs_on(self.device, self.precision), self.precision, self.engine

    def servable(self) -> bool:
        # The server runs completions and suggestions; --explain runs here.
        return self.use_server and not self.explain

    def read_examples(self) -> None:
        """Put the --examples file's queries into the settings; a bad file is a usage error."""
        if self.examples_file is not None and self.examples is None:
            from autocomplete.text.frames import read_examples

            self.examples = read_examples(self.examples_file)

    def load(self):
        """The model these settings name, loaded (once per process) in this process."""
        from autocomplete.engine import models

        return models.load(self.model, self.device, self.precision, self.engine)


# Each check returns the value or raises ValueError with the sentence the user sees.
def check_temperature(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), not {value}")
    return value


def check_top_k(value: int) -> int:
    if value < 0:
        raise ValueError(f"top-k must be >= 0 (0 = off), not {value}")
    return value


def check_top_p(value: float) -> float:
    if not (0 < value <= 1):  # also rejects NaN
        raise ValueError(f"top-p must be in (0, 1], not {value}")
    return value


def check_max_tokens(value: int) -> int:
    if value < 1:
        raise ValueError(f"max-tokens must be >= 1, not {value}")
    return value


def check_stop(value: str) -> str:
    return _one_of("stop", value, STOP_RULES)


def check_style(value: str) -> str:
    return _one_of("style", value, STYLES)


def check_device(value: str) -> str:
    return _one_of("device", value, DEVICES)


def check_precision(value: str) -> str:
    return _one_of("precision", value, PRECISIONS)


def check_engine(value: str) -> str:
    return _one_of("engine", value, ENGINES)


def _one_of(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def check_examples(value: list | None) -> list | None:
    if value is not None and (not value or not all(isinstance(line, str) and line for line in value)):
        raise ValueError("examples must be a non-empty list of example queries")
    return value
