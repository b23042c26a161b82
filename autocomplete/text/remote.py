"""Text over --api (an OpenAI-compatible engine, autocomplete.engine.api): the prompt it reads, completions streamed
with the stop rules, and, from the text of the server's top alternatives for the next token (OpenAI `logprobs`),
token healing and autocomplete.text.search's best-first search.

What the API can't give is approximated, and said (docs/serving.md, a notice, `"exact": false`):
- only the top ALTERNATIVES tokens of each step are seen, so the search can't be exact;
- engines report the model's own log-probabilities (temperature 1); other temperatures, top-k and top-p are
  applied here to the listed alternatives alone, as if nothing else could be drawn;
- tokens are text: the prompt and a continuation are tokenized again by the server each step, and a token that is
  part of a character (shown as U+FFFD) can't be followed.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from autocomplete import terminal
from autocomplete.engine.api import Api
from autocomplete.errors import UserError
from autocomplete.settings import Params
from autocomplete.text import frames
from autocomplete.text.heal import odds_while_spelling
from autocomplete.text.records import Completion
from autocomplete.text.sample import new_seed, probabilities
from autocomplete.text.search import Row, Space, best_first
from autocomplete.text.stream import TextStream
from autocomplete.text.suggestions import Found
from autocomplete.text.word import Words, boundary

ALTERNATIVES = 20  # top tokens asked for per step (OpenAI itself allows 5; vLLM 20; llama.cpp any)
MAX_REQUESTS = 120  # a bound on the work, as SUGGEST_EXPANSIONS is in process
PARALLEL = 4  # steps asked at once: an engine with batching answers them together
# Healing spells the typed word again a token (a request) at a time, each token at least a character: a word longer
# than this (a URL, a hash) has only its last MAX_TYPED characters spelled again, as in process only its last
# MAX_TAIL_TOKENS tokens are.
MAX_TYPED = 32


def typed_word(text: str) -> tuple[str, str]:
    """(text without the word being typed, that word with its leading space): "stock mar" -> ("stock", " mar"),
    "san " -> ("san", " "). The first tokens must spell it again (token healing, on text)."""
    match = re.search(r"\s?\S+$|\s+$", text)
    if match is None or match.start() == 0:
        return text, ""  # nothing before the word to start from: no healing
    start = max(match.start(), len(text) - MAX_TYPED)
    return text[:start], text[start:]


def spelled(text: str, typed: str, fold: bool) -> bool:
    return _same(text[: len(typed)], typed, fold) and len(text) >= len(typed)


def allowed(text: str, token: str, typed: str, fold: bool) -> bool:
    """Whether `token` may follow `text` while the typed word is not spelled yet: it goes on spelling it."""
    if spelled(text, typed, fold):
        return True
    rest = typed[len(text):]
    return bool(token) and (_same(token[: len(rest)], rest, fold) or _same(rest[: len(token)], token, fold))


def _same(a: str, b: str, fold: bool) -> bool:
    return a.lower() == b.lower() if fold else a == b


def alternatives(choice: dict) -> list[tuple[str, float]] | None:
    """The first position's alternatives, (text, log-probability) best first, in either shape engines use:
    OpenAI's legacy {"top_logprobs": [{token: logprob}]} (vLLM, llama-cpp-python) or {"content": [{"top_logprobs":
    [{"token", "logprob"}]}]} (llama.cpp's llama-server). None if the server sent none."""
    logprobs = choice.get("logprobs") or {}
    if logprobs.get("top_logprobs"):
        first = logprobs["top_logprobs"][0] or {}
        pairs = list(first.items())
    elif logprobs.get("content"):
        pairs = [(entry.get("token", ""), entry.get("logprob")) for entry in logprobs["content"][0].get("top_logprobs")
                 or []]
    else:
        return None
    return sorted(((str(text), float(lp)) for text, lp in pairs if lp is not None), key=lambda pair: -pair[1])


def reshape(listed: list[tuple[str, float]], params: Params) -> list[tuple[str, float]]:
    """The sampler's probabilities for the listed tokens (best first), those it can draw: autocomplete.text.sample's
    temperature, then top-k, then top-p, on the list alone (at temperature 1 without top-k/top-p, the model's own
    probabilities, tail left out)."""
    if not listed:
        return []
    if params.temperature == 1 and not params.top_k and params.top_p >= 1:
        return [(text, math.exp(lp)) for text, lp in listed]
    probs = probabilities(np.array([lp for _, lp in listed], dtype=np.float32), params.temperature, params.top_k,
                          params.top_p)
    return [(text, float(p)) for (text, _), p in zip(listed, probs) if p > 0]


class Asker:
    """The server's alternatives for the token after each of several texts: one request with a list of prompts
    where the engine takes one (vLLM does), else a request each, several at once."""

    lists: bool | None = None  # whether this engine takes a list of prompts; None: not tried yet

    def __init__(self, api: Api, model: str):
        self.api, self.model, self.top = api, model, ALTERNATIVES
        self.pool = ThreadPoolExecutor(PARALLEL)

    def __call__(self, texts: list[str]) -> list[list[tuple[str, float]]]:
        if len(texts) > 1 and self.lists is not False:
            try:
                reply = self._ask(texts)
                choices = sorted(reply.get("choices") or [], key=lambda choice: choice.get("index", 0))
                if len(choices) == len(texts):
                    self.lists = True
                    return [self._read(choice) for choice in choices]
            except UserError:
                if self.lists:  # it took lists before: this failure is not about the list
                    raise
            self.lists = False  # refused, or answered for one prompt only: a request each from now on
        return list(self.pool.map(lambda text: self._read((self._ask(text).get("choices") or [{}])[0]), texts))

    def _ask(self, prompt: str | list[str]) -> dict:
        body = {"model": self.model, "prompt": prompt, "max_tokens": 1, "temperature": 0, "logprobs": self.top,
                "repeat_penalty": 1.0}
        try:
            return self.api.request("/completions", body)
        except UserError as error:
            if self.top > 5 and "logprobs" in str(error):  # OpenAI's own limit is 5
                self.top = 5
                return self._ask(prompt)
            raise

    def _read(self, choice: dict) -> list[tuple[str, float]]:
        found = alternatives(choice)
        if found is None:
            raise UserError(f"the server at {self.api.base} sends no logprobs, which --suggest, --explain and token "
                            "healing over --api need (vLLM and llama.cpp's server send them; transformers serve "
                            "doesn't)")
        return [(text, lp) for text, lp in found if "\ufffd" not in text]


def suggest(api: Api, model: str, prefix: str, params: Params, n: int = 5, words: int = 3) -> Found:
    """The n likeliest suggestions as autocomplete.text.suggest defines them, from the server's alternatives."""
    style, sent = prompt_for(prefix, params)
    kept, typed = typed_word(sent)
    fold = style == "query"

    def ends(token: str) -> bool:  # the end of the text (a special token: no text) counts as an end too
        if style == "query":
            return token == "" or token.startswith(("\n", "\r"))
        return token == "" or not token[0].isalnum()

    ask = Asker(api, model)

    def read(nodes: list[tuple[str, ...]]) -> list[Row]:
        texts = ["".join(tokens) for tokens in nodes]
        return [row(text, listed) for text, listed in zip(texts, ask([kept + text for text in texts]))]

    def row(text: str, listed: list[tuple[str, float]]) -> Row:
        # The typed letters restrict the choice before the sampler reshapes it, as in process: what is drawn is
        # given the letters typed.
        done = spelled(text, typed, fold)
        probs = reshape([(t, lp) for t, lp in listed if allowed(text, t, typed, fold)],
                        params if done else odds_while_spelling(typed[len(text):], params))
        if not done:  # over the tokens that fit, as in process
            total = sum(q for _, q in probs)
            probs = [(t, q / total) for t, q in probs]
        # the server lists its top alternatives only: any unlisted are cut
        return Row(sum(q for token, q in probs if ends(token)), [t for t, _ in probs], [q for _, q in probs],
                   bool(probs))

    try:
        (listed,) = ask([kept])
        # the root's request is the first of MAX_REQUESTS
        result = best_first(Space(read=read, shown=lambda tokens: "".join(tokens)[len(typed):],
                                 spelled=lambda tokens: spelled("".join(tokens), typed, fold), ends_text={""},
                                 bound=MAX_REQUESTS - 1, batch=PARALLEL),
                            [((), 1.0, row("", listed))], prefix, style, n, words)
    finally:
        ask.pool.shutdown(wait=False, cancel_futures=True)
    for suggestion in result:
        suggestion.tokens = None  # texts, not ids: ids don't travel
    result.exact, result.note = False, ""  # the top alternatives are all it saw: said once, just below
    terminal.notice_once("api-suggest-approximate", "Over --api, suggestions come from the server's top alternatives "
                         "for each token, so their probabilities are approximate (said once; see docs/serving.md).")
    return result


def heal(api: Api, model: str, kept: str, typed: str, params: Params, seed: int, fold: bool):
    """Whole-word healing over the API (autocomplete.text.word's search, on the server's top alternatives, what
    they don't list left out): the typed word finished to the likeliest whole word (greedy at temperature 0, else
    drawn with the seed): an autocomplete.text.word.Word whose tokens are texts. None when the server sends no
    logprobs or nothing listed spells on: the caller completes unhealed."""
    import random

    ask = Asker(api, model)

    def key(tokens: tuple) -> str:
        text = "".join(tokens)
        word = text[: boundary(text, typed)]
        return word.lower() if fold else word

    def ended(tokens: tuple) -> bool:
        text = "".join(tokens)
        return spelled(text, typed, fold) and boundary(text, typed) is not None

    search = Words(key=key, text=lambda tokens: "".join(tokens))

    def expand(tokens: tuple, p: float, listed: list[tuple[str, float]]) -> None:
        head, probs = "".join(tokens), [(token, math.exp(lp)) for token, lp in listed]
        unlisted, past = max(0.0, 1.0 - sum(q for _, q in probs)), 0
        if spelled(head, typed, fold):  # the end of the text (a special token: no text) ends a word too
            search.ends(tokens, p * sum(q for token, q in probs if not token or not token[0].isalnum()))
            children = [(token, q) for token, q in probs if token and token[0].isalnum()]
            past = len(tokens) - next(i for i in range(len(tokens) + 1)
                                      if spelled("".join(tokens[:i]), typed, fold))
        else:
            children = [(token, q) for token, q in probs if allowed(head, token, typed, fold)]
        search.follow(tokens, p, children, sum(q for _, q in children) + unlisted, past, ended)

    try:
        try:
            (listed,) = ask([kept])
        except UserError as error:
            if "sends no logprobs" not in str(error):
                raise
            terminal.notice_once(f"api-no-healing-{api.host}", f"The server at {api.host} sends no logprobs, so the "
                                 "word being typed is continued from its token boundary, unhealed (said once).")
            return None
        expand((), 1.0, listed)
        search.run(lambda nodes: ask([kept + "".join(tokens) for tokens in nodes]), expand, PARALLEL)
    finally:
        ask.pool.shutdown(wait=False)
    draw = random.Random(seed)
    return search.chosen(params.temperature, lambda weights: draw.choices(range(len(weights)), weights)[0])


def past_typed(word, typed: str, fold: bool) -> int:
    """How many of a word's tokens (texts) come after the one that finished spelling the typed letters: new tokens,
    which count against --max-tokens as in process (the ones that spell the typed letters don't)."""
    return len(word.tokens) - next(i for i in range(len(word.tokens) + 1)
                                   if spelled("".join(word.tokens[:i]), typed, fold))


def prompt_for(text: str, params: Params) -> tuple[str, str]:
    """(style, the text the server reads): in the query style, the example queries come first, as in process."""
    style = frames.resolve(params.style, text)
    if style != "query":
        return style, text
    return style, "\n".join(params.examples or frames.EXAMPLES) + "\n" + text


def complete(api: Api, model: str, prompt: str, params: Params, on_text: Callable[[str], None],
             check: Callable[[], None] = lambda: None) -> Completion:
    """A completion from the server, streamed word by word with the same stop rules as in process (also sent to
    the server where it can apply them: the end of a query's line). Ctrl-C ends it, keeping what was streamed.
    check: called at every event; what it raises ends the completion (--web's client hung up)."""
    style, sent = prompt_for(prompt, params)
    seed = params.seed if params.seed is not None else new_seed()
    chunks: list[str] = []
    stream = TextStream(lambda ids: "".join(chunks[: len(ids)]), params.stop, query=style == "query")
    finish, usage, first_at, started = "length", {}, None, time.perf_counter()
    try:
        # Token healing, on text: the word being typed is taken back and spelled again from the server's
        # alternatives (when it sends them); the part after the typed letters starts the completion.
        kept, typed = typed_word(sent)
        word = heal(api, model, kept, typed, params, seed, style == "query") if typed else None
        head = word.text if word else ""
        if word is None:  # unhealed: the prompt as typed
            kept, typed = sent, ""
        left = params.max_tokens - (past_typed(word, typed, style == "query") if word else 0)
        body = {"model": model, "prompt": kept + head, "max_tokens": max(1, left),
                "temperature": params.temperature, "top_p": params.top_p, "seed": seed, "top_k": params.top_k,
                "repeat_penalty": 1.0}
        if style == "query":
            body["stop"] = ["\n"]  # a query ends at its line's end, even at once (in process too)
        events = api.stream(body) if left > 0 else iter(())
        received, ended = 0, False  # the server's text events: -n holds on our side too (it may ignore max_tokens)
        if head[len(typed):]:
            events = itertools.chain([{"choices": [{"text": head[len(typed):]}]}], events)
            received = -1
        for event in events:
            check()
            usage = event.get("usage") or usage
            for choice in event.get("choices") or []:
                text = choice.get("text") or ""
                if text:
                    first_at = first_at or time.perf_counter()
                    chunks.append(text)
                    received += 1
                    piece = stream.put(len(chunks) - 1)
                    if piece:
                        on_text(piece)
                if choice.get("finish_reason"):
                    finish = "length" if choice["finish_reason"] == "length" else "stop" if style == "query" else "eos"
                    ended = True  # the server's end: nothing of ours to cut
            if stream.stopped:
                finish = "stop"
                break  # closes the connection: the server stops generating
            if received >= left and not ended:
                break  # "length"
    except KeyboardInterrupt:
        finish = "interrupted"
    piece = stream.flush()
    if piece:
        on_text(piece)
    ended = time.perf_counter()
    count = usage.get("completion_tokens")  # the server's count; not sent when the stream was cut short here
    rate = None
    if isinstance(count, int) and count > 1 and first_at is not None and ended > first_at:
        rate = (count - 1) / (ended - first_at)
    # Token ids don't travel over the API: tokens is None, the count is the server's (None if it didn't say).
    return Completion(prompt=prompt, completion=stream.text, tokens=None, finish_reason=finish,
                      prompt_tokens=usage.get("prompt_tokens"), seed=seed,
                      time_to_first_token=None if first_at is None else first_at - started, tokens_per_second=rate,
                      style=style, completion_tokens=count)
