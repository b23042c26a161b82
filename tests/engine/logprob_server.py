"""A stand-in for llama.cpp's server (llama-server) whose answers are computed: the tiny GPT-2 of the tests
(transformers, CPU) behind an OpenAI-compatible /v1/completions with streaming, stop strings, seeds and `logprobs`,
so that CI runs the --api paths that need logprobs (token healing on text, --suggest, --explain).

    python logprob_server.py MODEL_DIR PORT_FILE [--shape content|legacy|none]   # 127.0.0.1, a free port

The logprobs shape: llama-server's {"content": [{"token", "logprob", "top_logprobs": [{"token", "logprob"}]}]}
(content, the default), OpenAI's legacy one as vLLM sends it ({"tokens", "token_logprobs", "top_logprobs":
[{text: logprob}]}), or none at all (as transformers serve). A request's model named "content", "legacy" or "none"
chooses its own shape. Log-probabilities are the model's own (temperature 1, full softmax), as llama-server sends
them by default; a token's text is its own decoded text (U+FFFD for part of a character; "" for the end of text).
/v1/models lists one model, "tiny-gpt2" (or "tiny-gpt2-legacy", "tiny-gpt2-none" with --shape). A prompt longer
than the context window is read by its last n_positions tokens (llama-server would shift its context or refuse).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import ThreadingHTTPServer

import torch
from transformers import AutoTokenizer, GPT2LMHeadModel

from stand_in import JsonHandler

SHAPES = ("content", "legacy", "none")
LOCK = threading.Lock()  # one forward pass at a time: a small shared machine


def load(directory: str):
    torch.set_num_threads(1)
    model = GPT2LMHeadModel.from_pretrained(directory, use_safetensors=True).eval()
    return AutoTokenizer.from_pretrained(directory), model


def piece(tok, ids: list[int]) -> str:
    return tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def generate(tok, model, prompt: str, body: dict):
    """Yields (token id, its log-probabilities over the vocabulary) for each generated token."""
    ids = tok(prompt).input_ids or [tok.eos_token_id]  # an empty prompt starts from the start of a text
    window, eos = model.config.n_positions, tok.eos_token_id
    temperature, top_k, top_p = float(body.get("temperature", 0.8)), int(body.get("top_k") or 0), body.get("top_p")
    generator, seed = torch.Generator(), body.get("seed")
    if isinstance(seed, int) and seed >= 0:
        generator.manual_seed(seed % 2**63)
    else:  # llama-server's -1 (its default): a random seed
        generator.seed()
    for _ in range(int(body.get("max_tokens") or 16)):
        with LOCK, torch.no_grad():
            logits = model(torch.tensor([ids[-window:]])).logits[0, -1].float()
        logprobs = torch.log_softmax(logits, -1)
        if temperature <= 0:
            token = int(logits.argmax())
        else:
            probs = torch.softmax(logits / temperature, -1)
            order = probs.argsort(descending=True)[: top_k or None]
            kept = probs[order]
            if top_p is not None and top_p < 1:
                kept = kept[: int((kept.cumsum(0) - kept < top_p).sum())]
            token = int(order[torch.multinomial(kept / kept.sum(), 1, generator=generator)])
        yield token, logprobs
        if token == eos:
            return
        ids.append(token)


def logprobs_of(tok, steps: list, n: int, shape: str) -> dict | None:
    if shape == "none" or not n or not steps:
        return None
    def text(i) -> str:
        return piece(tok, [int(i)])

    tops = [[(text(i), float(lps[i])) for i in lps.topk(n).indices] for _, lps in steps]
    if shape == "legacy":  # a dict per position, best first: of tokens with the same text, the likeliest (as vLLM)
        dicts = [{} for _ in tops]
        for top, found in zip(tops, dicts):
            for s, lp in top:
                found.setdefault(s, lp)
        return {"tokens": [text(t) for t, _ in steps], "token_logprobs": [float(lps[t]) for t, lps in steps],
                "top_logprobs": dicts}
    return {"content": [{"token": text(t), "logprob": float(lps[t]),
                         "top_logprobs": [{"token": s, "logprob": lp} for s, lp in top]}
                        for (t, lps), top in zip(steps, tops)]}


def run(tok, model, prompt: str, body: dict):
    """Yields (text piece, finish reason or None, the steps so far): text held back while it ends in part of a
    character or of a stop string; stop strings cut and not sent, as llama-server does."""
    stops, steps, sent = body.get("stop") or [], [], ""
    stops = [stops] if isinstance(stops, str) else [s for s in stops if s]
    for token, lps in generate(tok, model, prompt, body):
        steps.append((token, lps))
        text = piece(tok, [t for t, _ in steps])
        cut = min((text.find(s) for s in stops if s in text), default=-1)
        if cut >= 0 or token == tok.eos_token_id:
            yield text[len(sent): cut if cut >= 0 else None], "stop", steps
            return
        held = max((k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        ready = text[: len(text) - held].rstrip("\ufffd")
        if len(ready) > len(sent):
            yield ready[len(sent):], None, steps
            sent = ready
    yield piece(tok, [t for t, _ in steps])[len(sent):], "length", steps


class Handler(JsonHandler):

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self.reply(200, {"object": "list", "data": [{"id": self.server.name, "object": "model"}]})
        else:
            self.reply(404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/completions":
            return self.reply(404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})
        prompts = body.get("prompt", "")
        prompts = [prompts] if isinstance(prompts, str) else prompts
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            return self.reply(400, {"error": {"code": 400, "message": "\"prompt\" must be a string or a list of "
                                              "strings", "type": "invalid_request_error"}})
        shape = body.get("model") if body.get("model") in SHAPES else self.server.shape
        tok, model, n = self.server.tok, self.server.model, int(body.get("logprobs") or 0)
        head = {"id": f"cmpl-{time.time_ns()}", "object": "text_completion", "created": int(time.time()),
                "model": body.get("model") or self.server.name}
        if not body.get("stream"):
            choices, used = [], 0
            for index, prompt in enumerate(prompts):
                text, finish, steps = "", None, []
                for text_piece, finish, steps in run(tok, model, prompt, body):
                    text += text_piece
                choices.append({"index": index, "text": text, "logprobs": logprobs_of(tok, steps, n, shape),
                                "finish_reason": finish})
                used += len(steps)
            usage = {"prompt_tokens": sum(len(tok(p).input_ids) for p in prompts), "completion_tokens": used}
            return self.reply(200, {**head, "choices": choices, "usage": usage})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for index, prompt in enumerate(prompts):
                told = 0  # the steps whose logprobs an event carried: an event may hold several tokens' text
                for text_piece, finish, steps in run(tok, model, prompt, body):
                    choice = {"index": index, "text": text_piece, "logprobs": logprobs_of(tok, steps[told:], n, shape),
                              "finish_reason": finish}
                    told = len(steps)
                    event = {**head, "choices": [choice]}
                    if finish:
                        event["usage"] = {"prompt_tokens": len(tok(prompt).input_ids), "completion_tokens": len(steps)}
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading (a stop rule of its own): the generation ends here


def main() -> None:
    directory, port_file, *rest = sys.argv[1:]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.tok, server.model = load(directory)
    server.shape = rest[rest.index("--shape") + 1] if "--shape" in rest else "content"
    server.name = "tiny-gpt2" if server.shape == "content" else f"tiny-gpt2-{server.shape}"
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(port_file + ".tmp", port_file)  # whole, or not there yet
    server.serve_forever()


if __name__ == "__main__":
    main()
