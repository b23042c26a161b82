"""What the model reads for one prompt: the style's hidden frame (its KV cache computed once per model), then the
prompt's tokens up to the word being typed, which the first generated tokens spell again (autocomplete.heal).

Every mode goes through prepare(): one-shot completions, --suggest, --explain, the REPL's ghost text, the server.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

from autocomplete import frames, ui
from autocomplete.heal import Healing, Vocab, back_up

if TYPE_CHECKING:
    from autocomplete.models import LoadedModel


@dataclass
class Frame:
    """Example queries, one per line, before the prompt. All its tokens but the last are in `cache`; the last
    (a line break) is read with the prompt, so a prompt that is all word-being-typed still gives the model input."""

    ids: list[int]
    last: int
    cache: object | None


@dataclass
class Prompt:
    style: str  # what runs: "query" or "text"
    ids: list[int]  # read after the frame's cache: the frame's last token, the prompt up to the word being typed
    frame: Frame | None
    healing: Healing | None  # None when there is nothing to spell again
    max_new: int  # tokens to generate at most, the typed letters spelled again included
    prompt_tokens: int  # the prompt's own tokens as the model reads them (the frame not counted)
    vocab: Vocab

    def cache(self):
        """A KV cache to start from, the model's to extend: a copy of the frame's, which stays as it is."""
        return copy.deepcopy(self.frame.cache) if self.frame and self.frame.cache is not None else None

    def allowed(self, generated: list[int]):
        return self.healing.allowed(generated) if self.healing else None

    def shown(self, new: list[int]) -> str:
        """The text of the generated ids after the typed letters they spell again: what the completion adds."""
        skip = len(self.healing.tail) if self.healing else 0
        return self.vocab.bytes_of(new)[skip:].decode("utf-8", errors="replace")


def prepare(lm: LoadedModel, text: str, style: str = "auto", examples: list[str] | None = None,
            max_new: int = 24, quiet: bool = False) -> Prompt:
    style = frames.resolve(style, text)
    frame = frame_for(lm, examples or list(frames.EXAMPLES)) if style == "query" else None
    vocab = vocabulary(lm)
    ids = lm.encode(text, special=frame is None)
    kept, tail = back_up(ids, vocab)
    spell = len(ids) - len(kept)
    lead = None  # a token read before the prompt's own
    if frame is not None:
        lead = frame.last
    elif not kept:  # the whole prompt is the word being typed: the model starts from the start of a text
        lead = lm.tokenizer.bos_token_id if lm.tokenizer.bos_token_id is not None else lm.tokenizer.eos_token_id
        if lead is None:
            kept, tail, spell = ids, b"", 0  # nothing to start from: no healing
    from autocomplete.complete import fit_to_context

    room = lm.context_length - (len(frame.ids) if frame else 0) - (lead is not None)
    fitted, max_new = fit_to_context(kept, room, max_new + spell, None if frame else lm.tokenizer.bos_token_id)
    if len(fitted) < len(kept) and not quiet:
        ui.notice(f"The prompt is {len(ids)} tokens; keeping its last {len(fitted) + spell} "
                  f"({lm.name} reads at most {lm.context_length}).")
    return Prompt(style, ([lead] if lead is not None else []) + fitted, frame,
                  Healing(vocab, tail, fold=style == "query") if tail else None, max_new, len(fitted) + spell, vocab)


def vocabulary(lm: LoadedModel) -> Vocab:
    if lm.vocab is None:
        lm.vocab = Vocab(lm.tokenizer)
    return lm.vocab


def frame_for(lm: LoadedModel, examples: list[str]) -> Frame:
    """The frame for these examples, computed once per model: as many as fit in half the context window."""
    key = tuple(examples)
    if key not in lm.frames:
        import torch

        lines = list(examples)
        ids = lm.encode("\n".join(lines) + "\n", special=True)
        while len(ids) > lm.context_length // 2 and len(lines) > 1:
            lines = lines[: len(lines) * 3 // 4] if len(ids) > lm.context_length else lines[:-1]
            ids = lm.encode("\n".join(lines) + "\n", special=True)
        cache = None
        if len(ids) > 1:
            with torch.inference_mode():
                cache = lm.model(input_ids=torch.tensor([ids[:-1]], device=lm.model.device), use_cache=True,
                                 logits_to_keep=1).cache
        lm.frames[key] = Frame(ids[:-1], ids[-1], cache)
    return lm.frames[key]
