"""The numbers --explain shows, whoever shows them: each step's likeliest next tokens with their probability at
T = 1 (the model's own) beside each temperature asked for, the token picked, and the entropy; and the --explain
--json record. Probabilities are softmax(logits / T) over the whole vocabulary, so at each T they sum to 1; the
token itself is drawn with all the parameters (top-k and top-p too), exactly as a normal completion would. (Over
--api, the same steps are built from the server's top alternatives: autocomplete.text.remote_explain.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from autocomplete.settings import Params
from autocomplete.text.complete import complete
from autocomplete.text.records import Completion, record as completion_record

if TYPE_CHECKING:  # the --api path uses the steps, not the model
    import numpy as np

    from autocomplete.engine.models import LoadedModel

TOP = 8


@dataclass
class Candidate:
    token: int | None  # None over --api: ids don't travel
    text: str
    logit: float  # over --api, the log-probability the server sent
    probability: dict[float, float]  # temperature -> probability


@dataclass
class Step:
    candidates: list[Candidate]
    picked: int | None
    picked_text: str
    entropy: dict[float, float]  # temperature -> entropy in bits
    allowed: int | None = None  # token healing: how many tokens fit the typed letters (None: any token may come)


def distribution(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) over the full vocabulary; T = 0 puts everything on the argmax."""
    from autocomplete.text.sample import probabilities  # loads numpy

    return probabilities(logits, temperature)


def entropy_bits(p: np.ndarray) -> float:
    import numpy as np

    p = p[p > 0].astype(np.float64)
    return max(0.0, float(-(p * np.log2(p)).sum()))  # no "-0.00" for a one-hot


def temperatures_shown(asked: list[float]) -> list[float]:
    """T = 1 first (the model's own distribution), then the ones asked for, in the order given."""
    return list(dict.fromkeys([1.0, *asked]))


def view(lm: LoadedModel, logits: np.ndarray, picked: int, temperatures: list[float], top: int = TOP,
         allowed: np.ndarray | None = None) -> Step:
    """One step. With token healing (`allowed` given) the logits of the tokens that don't fit the typed letters
    are -inf: the probabilities shown are over the tokens that fit, as the sampler draws them."""
    shown = temperatures_shown(temperatures)
    dists = {t: distribution(logits, t) for t in shown}
    top = min(top, logits.shape[-1] if allowed is None else len(allowed))
    import numpy as np

    order = np.argsort(-logits, kind="stable")[:top].tolist()
    if picked not in order:
        order.append(picked)  # a sampled outsider still gets its row
    candidates = [Candidate(i, lm.decode([i]), float(logits[i]), {t: float(d[i]) for t, d in dists.items()})
                  for i in order]
    return Step(candidates, picked, lm.decode([picked]), {t: entropy_bits(d) for t, d in dists.items()},
                None if allowed is None else len(allowed))


def steps_of(lm: LoadedModel, prompt: str, params: Params, temperatures: list[float], on_start=None,
             on_step=None, on_word=None) -> tuple[Completion, list[Step]]:
    """Generate as usual (at the first temperature), keeping every step's view. on_start(style, typed, about, score)
    before the first (the style, the typed letters finished as a word, what else to say of the numbers, and what
    the candidates' scores are: "logit" here); on_step(step, number) as each is taken; on_word(word) when the typed
    word is finished as a whole word."""
    from autocomplete.text.prompt import prepare  # loads numpy

    steps: list[Step] = []
    read = prepare(lm, prompt, params.style, params.examples, params.max_tokens)
    if on_start:
        on_start(read.style, read.healing.text if read.healing else "", "", "logit")

    def observe(logits: np.ndarray, token: int, allowed: np.ndarray | None) -> None:
        steps.append(view(lm, logits, token, temperatures, allowed=allowed))
        if on_step:
            on_step(steps[-1], len(steps))

    done = complete(lm, prompt, params, lambda piece: None, observe=observe, read=read,
                    on_word=on_word or (lambda word: None))
    return done, steps


def next_step(lm: LoadedModel, prompt: str, params: Params, top: int = TOP,
              check: Callable[[], None] = lambda: None) -> dict:
    """The odds of the token after `prompt`, once the typed word is finished as a completion finishes it (as a whole
    word, or else token by token: those steps come first): the --explain --json record of a completion stopped
    after the one step past the typed word (the web page's panel, autocomplete.ui.web). Each token is drawn with
    the parameters, as a completion would draw it. check: called before every forward; what it raises ends it."""
    import numpy as np

    from autocomplete.text.prompt import prepare  # loads numpy
    from autocomplete.text.sample import generate, new_seed  # loads numpy
    from autocomplete.text.word import WORD_TOKENS, start  # loads numpy

    read = prepare(lm, prompt, params.style, params.examples, WORD_TOKENS + 1, quiet=True)
    seed = params.seed if params.seed is not None else new_seed()
    rng = np.random.default_rng(seed)
    check()
    begin = start(lm, read, params.temperature, rng, check)
    steps: list[Step] = []

    def observe(logits: np.ndarray, token: int, allowed: np.ndarray | None) -> None:
        steps.append(view(lm, logits, token, [params.temperature], top, allowed))
        check()

    new = list(begin.given)
    for token in generate(lm.engine, begin.ids, read.max_new, params.temperature, params.top_k, params.top_p,
                          lm.eos_ids, rng, observe, begin.after, begin.allowed):
        new.append(token)
        if steps[-1].allowed is None or token in lm.eos_ids:  # past the typed letters (or the text ended)
            break
    done = Completion(prompt=prompt, completion=read.shown(new), tokens=new,
                      finish_reason="eos" if new and new[-1] in lm.eos_ids else "length",
                      prompt_tokens=read.prompt_tokens, seed=seed, time_to_first_token=None, tokens_per_second=None,
                      style=read.style, word=begin.word)
    return record(done, lm.name, params, [params.temperature], steps, lm.engine.name)


def record(done: Completion, model: str, params: Params, temperatures: list[float], steps: list[Step],
           engine: str | None = None) -> dict:
    word = done.word
    return {
        **completion_record(done, model, params, engine),
        "temperatures": temperatures_shown(temperatures),
        "word": None if word is None else {
            "text": word.text, "tokens": word.tokens if done.tokens is not None else None, "exact": word.exact,
            "prefixes_read": word.expansions,
            "candidates": [{"text": text, "probability": p} for text, p in word.candidates]},
        "steps": [
            {
                "picked": {"token": s.picked, "text": s.picked_text},
                "allowed_tokens": s.allowed,
                "entropy_bits": {str(t): round(h, 4) for t, h in s.entropy.items()},
                "candidates": [
                    {"token": c.token, "text": c.text,
                     ("logit" if c.token is not None else "logprob"): round(c.logit, 4),
                     "probability": {str(t): p for t, p in c.probability.items()}}
                    for c in s.candidates
                ],
            }
            for s in steps
        ],
    }
