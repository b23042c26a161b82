"""Settings: the one object a command line becomes (shared by the CLI, the REPL, the servers and the JSON output),
and the one table of options: each field that a command-line option sets declares it there (its flags, help,
environment variable, check, whether the config file may set it), and the argument reader (autocomplete.ui.args),
the Typer command (autocomplete.ui.cli), the config file (autocomplete.config) and the warm server's request schema
(Params.from_request) are all made from it. Params is its generation fields, frozen: what the text layer takes."""

from __future__ import annotations

import math
import os
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

from autocomplete.errors import UsageError

STOP_RULES = ("sentence", "line", "none")
STYLES = ("auto", "query", "text")
DEVICES = ("auto", "cpu", "cuda", "mps")
# auto: int8 on ONNX Runtime (as faithful as llama.cpp's Q8_0, faster than fp32), fp32 on torch (exact; its int8 is less
# faithful): autocomplete.engine.models.resolved_precision
PRECISIONS = ("auto", "fp32", "int8")
ENGINES = ("auto", "onnx", "torch")  # auto: onnx on the CPU for the models it exports, torch otherwise
DEFAULT_MODEL = "gpt2"
# The most text read as one prompt (stdin, a request): 1 MiB is far more than any supported model's context window.
MAX_PROMPT_BYTES = 1 << 20


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

    raise UsageError(f"{name} must be 1 or 0 (or true/false, yes/no, on/off), not {os.environ[name]!r}")


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


MAX_TOKENS = 4096  # a completion's tokens at most: a bound on one request's work (a search box's needs are a few)


def check_max_tokens(value: int) -> int:
    if not 1 <= value <= MAX_TOKENS:
        raise ValueError(f"max-tokens must be from 1 to {MAX_TOKENS}, not {value}")
    return value


def check_seed(value: int | None) -> int | None:
    if value is not None and not 0 <= value < 2**64:  # what a random generator takes (None: a new seed each time)
        raise ValueError(f"seed must be from 0 to 2^64 - 1, not {value}")
    return value


def check_at_least_one(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be 1 or more, not {value}")
    return value


def check_idle_timeout(value: float) -> float:
    if not value >= 0:  # NaN too
        raise ValueError(f"must be 0 or more, not {value}")
    return value


def check_port(value: int) -> int:
    if not 0 <= value <= 65535:
        raise ValueError(f"port must be 0-65535 (0 = any free one), not {value}")
    return value


def check_examples(value: list | None) -> list | None:
    if value is not None and (not value or not all(isinstance(line, str) and line for line in value)):
        raise ValueError("examples must be a non-empty list of example queries")
    return value


@dataclass(frozen=True)
class Option:
    """How the command line spells a setting: made by option() beside the field, completed (dest, kind) by OPTIONS."""

    flags: tuple[str, ...]
    help: str
    metavar: str = ""
    envvar: str | None = None
    check: Callable | None = None  # the value, or ValueError with the sentence the user sees (choices: checked too)
    multiple: bool = False  # given several times (the temperatures --explain compares)
    in_config: bool = False  # a default the config file may set
    show_default: bool | str = False  # help ends with [default: …]: the field's default, or this text
    choices: tuple[str, ...] | None = None
    dest: str = ""  # the field's name, which is also the Typer parameter's
    kind: object = None  # "flag", int, float, str, or the choices: from the field's type

    def checked(self, value):
        """The value if it is one this option takes; ValueError with the sentence the user sees otherwise."""
        if isinstance(self.kind, tuple) and value not in self.kind:
            raise ValueError(f"{self.dest.replace('_', '-')} must be one of {', '.join(self.kind)}, not {value!r}")
        return self.check(value) if self.check else value


def option(default, *flags: str, help: str, generation: bool = False, **spelling):
    """A Settings field that a command-line option sets. generation: it shapes a generation (GENERATION)."""
    return _field(default, {"option": Option(flags, help, **spelling), "generation": generation})


def setting(default, generation: bool = False, check: Callable | None = None):
    """A Settings field no option sets (the REPL or the command fills it in)."""
    return _field(default, {"generation": generation, "check": check})


def _field(default, metadata: dict):
    if default == []:
        return field(default_factory=list, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class Settings:
    """Everything a command line (or the REPL, or a server request) asks for: the one settings object, in the
    order --help lists the options. The fields marked generation shape a generation (GENERATION: what a warm
    server receives and --json shows); the rest say what to do with the prompt and where the model runs."""

    model: str | None = option(
        None, "-m", "--model", metavar="MODEL", envvar="AUTOCOMPLETE_MODEL", in_config=True,
        show_default=DEFAULT_MODEL, help="Alias, Hub id, saved model directory or .gguf file")
    # Defaults suit a search box: a short, fairly likely continuation that ends with its sentence.
    temperature: float = option(
        0.7, "-t", "--temperature", metavar="T", check=check_temperature, multiple=True, in_config=True,
        show_default=True, generation=True,
        help="softmax(logits / T): 0 = always the likeliest token, 1 = the model's own odds, >1 = wilder. Give "
             "several with --explain to compare them")
    top_k: int = option(
        50, "-k", "--top-k", metavar="K", check=check_top_k, in_config=True, show_default=True, generation=True,
        help="Sample only from the K likeliest tokens (0 = off)")
    top_p: float = option(
        0.8, "-p", "--top-p", metavar="P", check=check_top_p, in_config=True, show_default=True, generation=True,
        help="Sample only from the likeliest tokens holding this much probability (1 = off)")
    max_tokens: int = option(
        24, "-n", "--max-tokens", metavar="N", check=check_max_tokens, in_config=True, show_default=True,
        generation=True, help="Generate at most this many tokens")
    seed: int | None = option(
        None, "--seed", metavar="N", check=check_seed, generation=True,
        help="Random seed: the same seed and settings give the same completion")
    stop: str = option(
        "sentence", "--stop", choices=STOP_RULES, in_config=True, show_default=True, generation=True,
        help="End the completion at the first sentence end, line break, or only at max-tokens / end of text")
    style: str = option(
        "auto", "--style", choices=STYLES, envvar="AUTOCOMPLETE_STYLE", in_config=True, show_default=True,
        generation=True,
        help="query: complete a search query (ends at the line's end); text: continue plain text; auto: query for "
             "a short one-line prompt, text otherwise")
    # the user's example queries for the query style, read from --examples FILE by the command itself (a server,
    # which receives them, has another working directory)
    examples: list[str] | None = setting(None, generation=True, check=check_examples)
    examples_file: str | None = option(
        None, "--examples", metavar="FILE",
        help="Your own example queries, one per line (say, a sample of your site's searches), in place of the "
             "built-in ones for the query style")
    # what to do with each prompt
    suggest: int = option(
        0, "--suggest", metavar="N", check=check_at_least_one,
        help="List the N likeliest distinct continuations with their probabilities, like a search box")
    words: int = option(
        3, "--words", metavar="W", check=check_at_least_one, show_default=True,
        help="Longest suggestion, in words (with --suggest)")
    explain: bool = option(
        False, "--explain",
        help="Show each step: the likeliest next tokens, their probabilities per temperature, the pick and the "
             "entropy")
    only_new: bool = option(False, "--only-new", help="Print only the generated text")
    json_lines: bool = option(
        False, "--json", help="One JSON object per completion (JSON Lines) with tokens, settings and stats")
    each_line: bool = option(False, "--each-line", help="Complete every stdin line on its own, one output line each")
    interactive: bool = option(
        False, "-i", "--interactive", help="Start the REPL (what a bare `autocomplete` does on a terminal)")
    # the model, and where it runs
    device: str = option(
        "auto", "--device", choices=DEVICES, in_config=True, show_default=True, help="Where to run the model")
    precision: str = option(
        "auto", "--precision", choices=PRECISIONS, envvar="AUTOCOMPLETE_PRECISION", in_config=True, show_default=True,
        help="fp32: exact. int8: 8-bit weights, faster on the CPU, a little less faithful (see docs/speed.md). "
             "auto: int8 on onnx, fp32 on torch")
    engine: str = option(
        "auto", "--engine", choices=ENGINES, envvar="AUTOCOMPLETE_ENGINE", in_config=True, show_default=True,
        help="Where the model runs: onnx (ONNX Runtime on the CPU), torch, or auto: onnx on the CPU for the models "
             "it exports (GPT-2, Llama), torch otherwise")
    server: str | None = option(
        None, "--server", choices=("start", "stop", "status"),
        help="Keep the model loaded in a background process (start), or stop it, or show it (status). Completions "
             "use it automatically while it runs")
    api: str | None = option(
        None, "--api", metavar="URL", envvar="AUTOCOMPLETE_API_BASE", in_config=True,
        help="Run the model on an OpenAI-compatible server (vLLM, llama.cpp, TGI, ollama, transformers serve), e.g. "
             "http://localhost:8000/v1; -m names its model. Key: AUTOCOMPLETE_API_KEY")
    no_server: bool = option(
        False, "--no-server", help="Load the model in this process even if a server is running")
    idle_timeout: float = option(
        300.0, "--idle-timeout", metavar="SECONDS", envvar="AUTOCOMPLETE_IDLE_TIMEOUT", check=check_idle_timeout,
        in_config=True, show_default=True,
        help="With --server start (or AUTOCOMPLETE_AUTOSTART=1): exit after this long unused (0 = never)")
    web: bool = option(
        False, "--web",
        help="Serve a search page with suggestions and the next-token odds, and the OpenSearch suggest endpoint, "
             "on http://127.0.0.1:PORT (loopback only)")
    port: int = option(
        8765, "--port", metavar="N", check=check_port, in_config=True, show_default=True,
        help="The port --web listens on (0: any free one)")
    list_models: bool = option(
        False, "--list-models", help="List the model aliases and which are available offline")
    # the command line's own
    prompt: str | None = setting(None)
    temperatures: list[float] = setting([])  # every --temperature given, shown side by side by --explain

    def params(self) -> Params:
        """How to generate (the generation fields, frozen): what the text layer and the backends take."""
        return Params(**{name: tuple(value) if name == "examples" and value is not None else value
                         for name, value in ((name, getattr(self, name)) for name in GENERATION)})

    def server_key(self) -> str | None:
        """The model as the server knows it: a path made absolute, so `./m` means one model wherever run."""
        if self.model and Path(self.model).expanduser().exists():
            return str(Path(self.model).expanduser().resolve())
        return self.model

    def placement(self) -> Placement:
        """What a server must have loaded to serve this, as autocomplete.serve.client takes it."""
        return Placement(self.server_key(), runs_on(self.device, self.precision), self.precision, self.engine)

    def servable(self) -> bool:
        # The server runs completions and suggestions; --explain runs here.
        return not self.no_server and not self.explain


class Placement(typing.NamedTuple):
    """A model and where it runs: what a warm server loaded, and what a client asks one for."""

    model: str | None
    device: str
    precision: str
    engine: str


def _kind(spec: Option, hint):
    """An option's kind: its choices, or from its field's type (bool a flag)."""
    if spec.choices:
        return spec.choices
    if hint is bool:
        return "flag"
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


_HINTS = typing.get_type_hints(Settings)
OPTIONS = tuple(
    Option(**{**vars(f.metadata["option"]), "dest": f.name, "kind": _kind(f.metadata["option"], _HINTS[f.name])})
    for f in fields(Settings) if "option" in f.metadata)
OPTION = {spec.dest: spec for spec in OPTIONS}
GENERATION = tuple(f.name for f in fields(Settings) if f.metadata.get("generation"))


def accepts(name: str, value) -> bool:
    """Whether a value read from JSON or TOML has the type of the field `name` (an int is a number; a boolean is
    never a number)."""
    hint = _HINTS[name]
    types = tuple(typing.get_origin(a) or a for a in (typing.get_args(hint) or (hint,)))
    if float in types:
        types += (int,)
    return not (isinstance(value, bool) and bool not in types) and isinstance(value, types)


def check(name: str, value):
    """A field's value, checked as the command line checks it (ValueError otherwise)."""
    spec = OPTION.get(name)
    if spec is not None:
        return spec.checked(value)
    said = next(f for f in fields(Settings) if f.name == name).metadata.get("check")
    return said(value) if said else value


_DEFAULT = Settings()


@dataclass(frozen=True)
class Params:
    """How to generate: Settings' generation fields (GENERATION), frozen, with the command's defaults (as
    transformers' GenerationConfig is to a model). What the text layer, every backend and the Python API take; the
    rest of Settings says what to do with the prompt and where the model runs."""

    temperature: float = _DEFAULT.temperature
    top_k: int = _DEFAULT.top_k
    top_p: float = _DEFAULT.top_p
    max_tokens: int = _DEFAULT.max_tokens
    seed: int | None = _DEFAULT.seed
    stop: str = _DEFAULT.stop
    style: str = _DEFAULT.style
    examples: tuple[str, ...] | None = None  # example queries for the query style, in place of the built-in ones

    def wire(self) -> dict:
        """As a warm server's request carries them (JSON: the examples a list)."""
        return {name: list(value) if name == "examples" and value is not None else value
                for name, value in ((name, getattr(self, name)) for name in GENERATION)}

    def shown(self) -> dict:
        """As --json shows them: the example queries are the user's own file, not repeated."""
        return {k: v for k, v in self.wire().items() if k != "examples"}

    def checked(self) -> Params:
        """These, checked as the command line checks its options (ValueError says what is wrong)."""
        return Params.from_request(self.wire())

    @classmethod
    def from_request(cls, raw) -> Params:
        """A warm server's request parameters (any left out take their defaults), checked as the command line checks
        them: ValueError says what is wrong."""
        if not isinstance(raw, dict):
            raise ValueError("settings must be a JSON object")
        values = {}
        for name, value in raw.items():
            if name not in GENERATION:
                raise ValueError(f"unknown setting {name!r}")
            if not accepts(name, value):
                raise ValueError(f"setting {name} has the wrong type: {value!r}")
            value = check(name, float(value) if isinstance(value, int) and _HINTS[name] is float else value)
            values[name] = tuple(value) if name == "examples" and value is not None else value
        return cls(**values)
