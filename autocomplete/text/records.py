"""What a completion is, whoever made it (in process, a warm server, an --api engine), and its record: what
--json shows and a warm server sends back. Torch-free, so serve/ and ui/ both read it."""

from __future__ import annotations

from dataclasses import dataclass

from autocomplete.settings import Params


@dataclass
class Completion:
    prompt: str
    completion: str  # generated text only, exactly the streamed pieces joined
    tokens: list[int] | None  # generated token ids; None over --api
    finish_reason: str  # "stop" (the stop rule), "eos", "length" or "interrupted"
    prompt_tokens: int
    seed: int
    time_to_first_token: float | None
    tokens_per_second: float | None
    style: str = "text"  # the style that ran: "query" or "text"
    completion_tokens: int | None = None  # over --api (tokens None: ids don't travel), the server's count if sent
    word: object | None = None  # the whole word the typed letters were healed to (autocomplete.text.word.Word)

    @property
    def token_count(self) -> int | None:
        return len(self.tokens) if self.tokens is not None else self.completion_tokens

    @property
    def interrupted(self) -> bool:
        return self.finish_reason == "interrupted"


def record(c: Completion, model: str, params: Params, engine: str | None = None) -> dict:
    """A completion as --json shows it. engine: what ran the model here or on the warm server ("onnx" or "torch"),
    None over --api (the server there doesn't say)."""
    return {
        "prompt": c.prompt,
        "completion": c.completion,
        "model": model,
        "engine": engine,
        "tokens": c.tokens,
        "finish_reason": c.finish_reason,
        "style": c.style,
        "settings": {**params.shown(), "seed": c.seed},
        "stats": {
            "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.token_count,
            "time_to_first_token_s": _round(c.time_to_first_token),
            "tokens_per_second": _round(c.tokens_per_second),
        },
    }


def from_record(r: dict) -> Completion:
    """The Completion a record describes: a completion served by the warm server renders like a local one."""
    return Completion(
        prompt=r["prompt"], completion=r["completion"], tokens=r["tokens"], finish_reason=r["finish_reason"],
        prompt_tokens=r["stats"]["prompt_tokens"], seed=r["settings"]["seed"],
        completion_tokens=r["stats"]["completion_tokens"] if r["tokens"] is None else None,
        time_to_first_token=r["stats"]["time_to_first_token_s"], tokens_per_second=r["stats"]["tokens_per_second"],
        style=r["style"])


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
