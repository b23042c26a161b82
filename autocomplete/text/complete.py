"""One completion: prompt -> token ids (cut to the context window) -> the loop -> text streamed word by word."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from autocomplete.settings import Params
from autocomplete.text.records import Completion
from autocomplete.text.stream import TextStream
from autocomplete.text import frames
from autocomplete.text.casing import apart, casings, weights
from autocomplete.text.word import start, start_in_casings

if TYPE_CHECKING:  # the module stays light: a cold call imports numpy only once it completes
    from autocomplete.engine.models import LoadedModel
    from autocomplete.text.prompt import Prompt


def complete(lm: LoadedModel, prompt: str, params: Params, on_text: Callable[[str], None],
             observe: Callable | None = None, read: Prompt | None = None,
             on_word: Callable | None = None) -> Completion:
    """Generate a completion of `prompt`, calling on_text with each piece as it becomes final.
    Ctrl-C ends it early: what was generated is kept and the completion says 'interrupted'.
    read: what the model reads, when the caller has prepared it already (--explain shows it first).
    on_word(word): sees the whole word the typed letters were healed to (autocomplete.text.word), before the rest."""
    import numpy as np

    from autocomplete.text.prompt import prepare  # loads numpy
    from autocomplete.text.sample import generate, new_seed  # loads numpy

    texts = casings(prompt, frames.resolve(params.style, prompt)) if read is None else [prompt]
    lower = len(texts) > 1  # a lower-case query: what it adds shown in lower case, whatever case it's read in
    if read is None:  # a lower-case query is read in each of its casings (autocomplete.text.casing)
        reads, _ = apart([prepare(lm, text, params.style, params.examples, params.max_tokens, quiet=i > 0)
                          for i, text in enumerate(texts)])
    else:
        reads = [read]
    read = reads[0]
    chosen = [read]  # the casing the completion goes on in

    def shown(new: list[int]) -> str:
        text = chosen[0].shown(new)
        return text.lower() if lower else text

    seed = params.seed if params.seed is not None else new_seed()
    rng = np.random.default_rng(seed)
    stream = TextStream(shown, params.stop, query=read.style == "query")  # a query ends with its line

    finish, first_at, started = "length", None, time.perf_counter()
    begin = None
    try:
        if len(reads) > 1:
            chosen[0], begin = start_in_casings(lm, reads, weights(lm, reads), params.temperature, rng)
        else:
            begin = start(lm, read, params.temperature, rng)
        read = chosen[0]
        if begin.word is not None and on_word is not None:
            on_word(begin.word)
        given = begin.given[: read.max_new]
        for token in given:  # the healed word, chosen as a whole (autocomplete.text.word)
            first_at = first_at or time.perf_counter()
            piece = stream.put(token)
            if piece:
                on_text(piece)
        for token in generate(lm.engine, begin.ids, read.max_new - len(given), params.temperature, params.top_k,
                              params.top_p, lm.eos_ids, rng, observe, begin.after, begin.allowed):
            if first_at is None:
                first_at = time.perf_counter()
            piece = stream.put(token)
            if piece:
                on_text(piece)
            if stream.stopped:
                finish = "stop"
                break
            if token in lm.eos_ids:
                finish = "eos"
    except KeyboardInterrupt:
        finish = "interrupted"
    piece = stream.flush()
    if piece:
        on_text(piece)
    ended = time.perf_counter()
    n = len(stream.ids)
    return Completion(
        prompt=prompt,
        completion=stream.text,
        tokens=stream.ids,
        finish_reason=finish,
        prompt_tokens=read.prompt_tokens,
        seed=seed,
        time_to_first_token=None if first_at is None else first_at - started,
        tokens_per_second=(n - 1) / (ended - first_at) if n > 1 and ended > first_at else None,
        style=read.style,
        word=begin.word if begin else None,
    )
