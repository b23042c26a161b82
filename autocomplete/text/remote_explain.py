"""--explain over --api: the loop one token at a time, each step's alternatives from the server's logprobs, drawn
here (greedy at T = 0, else with the seed), as steps autocomplete.text.explain's record and display take.

Approximate where the API can't say more, and said so: a step sees only the listed alternatives (20), so at T = 1
they are the model's own probabilities (not summing to 1), and at other temperatures, and for the entropy, they
are renormalised over the listed ones alone.
"""

from __future__ import annotations

import math
import random
import time

from autocomplete.settings import Params
from autocomplete.text.explain import TOP, Candidate, Step, record, temperatures_shown
from autocomplete.text.records import Completion
from autocomplete.text.remote import Asker, allowed, heal, past_typed, prompt_for, reshape, spelled, typed_word
from autocomplete.text.sample import new_seed
from autocomplete.text.stream import TextStream


def next_step(remote, prompt: str, params: Params, top: int = TOP) -> dict:
    """As autocomplete.text.explain.next_step, over --api: the record of a completion stopped after its first step
    past the typed word (all the server listed, up to top)."""
    done, steps = run(remote, prompt, params, [params.temperature], until=1, top=top)
    return record(done, remote.name, params, [params.temperature], steps)


def run(remote, prompt: str, params: Params, temperatures: list[float], until: int | None = None, top: int = TOP,
        on_start=None, on_step=None, on_word=None) -> tuple[Completion, list[Step]]:
    """The loop -> (the completion, its steps). remote: the server (.api) and the model asked for there (.name).
    until: stop after this many steps past the typed word (at --max-tokens otherwise). top: candidates kept a step.
    on_start(style, typed, about, score) before the first step (as autocomplete.text.explain.steps_of: about says
    the numbers are approximate, from the server's top alternatives; the scores are log-probabilities);
    on_step(step, number) as each is taken; on_word(word) when the typed word is finished as a whole word."""
    style, sent = prompt_for(prompt, params)
    kept, typed = typed_word(sent)
    fold, shown_ts = style == "query", temperatures_shown(temperatures)
    seed = params.seed if params.seed is not None else new_seed()
    draw, ask = random.Random(seed), Asker(remote.api, remote.name)
    if on_start:
        on_start(style, typed, f"; from {remote.api.host}'s top {ask.top} alternatives a step: probabilities "
                               "approximate", "logprob")
    steps: list[Step] = []
    chunks: list[str] = []
    stream = TextStream(lambda ids: "".join(chunks[: len(ids)]), params.stop, query=fold)
    text, new, past, reason, started, word = "", 0, 0, "length", time.perf_counter(), None
    try:
        # The typed word finished as a whole first (as in process), shown as the words it could become
        word = heal(remote.api, remote.name, kept, typed, params, seed, fold) if typed else None
        if word is not None:
            if on_word:
                on_word(word)
            text, new = word.text, past_typed(word, typed, fold)
            chunks.append(text[len(typed):])
            stream.put(0)
        while True:
            healing = bool(typed) and not spelled(text, typed, fold)
            if not healing and (new >= params.max_tokens if until is None else past >= until):
                break
            (listed,) = ask([kept + text])
            fit = [(t, lp) for t, lp in listed if not healing or allowed(text, t, typed, fold)]
            if not fit:
                reason = "stop"  # nothing the server listed spells the typed word on
                break
            odds = reshape(fit, params)
            pick = odds[0][0] if len(odds) == 1 else draw.choices([t for t, _ in odds], [p for _, p in odds])[0]
            steps.append(_step(fit, pick, shown_ts, healing, top))
            if on_step:
                on_step(steps[-1], len(steps))
            new, past = new + (not healing), past + (not healing)
            if pick == "":  # a special token (the end of the text) has no text
                reason = "eos"
                break
            before = text[len(typed):] if spelled(text, typed, fold) else ""
            text += pick
            if spelled(text, typed, fold):
                chunks.append(text[len(typed):][len(before):])
                stream.put(len(chunks) - 1)
            if stream.stopped:
                reason = "stop"
                break
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        ask.pool.shutdown(wait=False)
    stream.flush()
    done = Completion(prompt=prompt, completion=stream.text, tokens=None, finish_reason=reason, prompt_tokens=None,
                      seed=seed, time_to_first_token=None, tokens_per_second=None, style=style,
                      completion_tokens=len(steps), word=word)
    done_in = time.perf_counter() - started
    if len(steps) > 1:
        done.tokens_per_second = len(steps) / done_in
    return done, steps


def _step(fit: list[tuple[str, float]], pick: str, temperatures: list[float], healing: bool, top: int) -> Step:
    """One step's view: the listed alternatives that may come, with their probability at each temperature (while
    healing, over the ones that fit the typed letters, as in process)."""
    dists = {t: dict(reshape(fit, Params(temperature=t, top_k=0, top_p=1.0))) for t in temperatures}
    if healing:
        dists = {t: {token: p / sum(d.values()) for token, p in d.items()} for t, d in dists.items()}
    shown = fit[:top] + [(t, lp) for t, lp in fit[top:] if t == pick][:1]  # a sampled outsider gets its row
    candidates = [Candidate(None, t, lp, {T: d.get(t, 0.0) for T, d in dists.items()}) for t, lp in shown]
    return Step(candidates, None, pick, {T: _entropy(d.values()) for T, d in dists.items()},
                len(fit) if healing else None)


def _entropy(probabilities) -> float:
    listed = [p for p in probabilities if p > 0]
    total = sum(listed)
    return max(0.0, -sum(p / total * math.log2(p / total) for p in listed)) if total else 0.0
