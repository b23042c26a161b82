"""A stand-in OpenAI-compatible server for the --api error paths only (the happy paths run against a real engine):
each model name asks for one behaviour, with responses shaped like real engines' (OpenAI's, FastAPI's, llama.cpp's).
Some also keep a log of when their requests came and went, for the timing of the REPL's ghost text (GET /v1/log).

    python replay_server.py PORT_FILE [CERT KEY]   # 127.0.0.1, a free port written to PORT_FILE; TLS with CERT
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time
from http.server import ThreadingHTTPServer

from stand_in import JsonHandler


def event(text: str, finish: str | None = None) -> bytes:
    choice = {"index": 0, "text": text, **({"finish_reason": finish} if finish else {})}
    return f"data: {json.dumps({'choices': [choice], 'object': 'text_completion'})}\n\n".encode()


# The requests for the models that keep one ("drip", "stall", "stall-once"), for GET /v1/log: model, prompt, and when
# (time.monotonic() here) it arrived and its connection closed (None while open).
LOG: list[dict] = []


class Handler(JsonHandler):

    def stream_head(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()

    def hung_up(self, seconds: float) -> bool:
        """Wait up to `seconds`; whether the client closed the connection meanwhile (it sends nothing more on it)."""
        ready, _, _ = select.select([self.connection], [], [], seconds)
        return bool(ready) and not self.connection.recv(1, socket.MSG_PEEK)

    def logged(self, body: dict) -> None:
        """The logged models' behaviours, each request in LOG from its arrival until its connection closes."""
        entry = {"model": body["model"], "prompt": body.get("prompt"), "arrived": time.monotonic(), "closed": None}
        stalled = body["model"] == "stall" or (body["model"] == "stall-once" and not LOG)
        LOG.append(entry)
        try:
            if body["model"] == "drip":  # a word a second, up to max_tokens, until the client hangs up
                self.stream_head()
                for i in range(body.get("max_tokens") or 16):
                    self.wfile.write(event(f" w{i}"))
                    self.wfile.flush()
                    if self.hung_up(1.0):
                        return
                self.wfile.write(event("", "length") + b"data: [DONE]\n\n")
            elif stalled:  # a busy server: no answer until the client hangs up ("stall-once": the first request)
                while not self.hung_up(1.0):
                    pass
            else:
                self.stream_head()
                self.wfile.write(event(" soon", "stop") + b"data: [DONE]\n\n")
        except OSError:
            pass
        finally:
            entry["closed"] = time.monotonic()
            self.close_connection = True

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self.reply(200, {"object": "list", "data": [{"id": "alpha"}, {"id": "beta"}]})
        elif self.path == "/v1/log":
            self.reply(200, {"requests": LOG})
        else:
            self.reply(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model = body.get("model")
        if model in ("drip", "stall", "stall-once"):
            self.logged(body)
        elif model == "key":
            if self.headers.get("Authorization") != "Bearer right-key":
                return self.reply(401, {"error": {"message": "Invalid API key", "type": "invalid_request_error"}})
            self.stream_head()
            self.wfile.write(event(" open") + event(" sesame", "stop") + b"data: [DONE]\n\n")
        elif model == "missing":
            self.reply(404, {"error": {"message": "The model `missing` does not exist."}})
        elif model == "busy":
            self.reply(429, {"error": {"message": "Rate limit reached"}})
        elif model == "broken":
            self.reply(500, {"error": "CUDA out of memory"})  # llama.cpp's shape: a bare string
        elif model == "malformed":
            self.stream_head()
            self.wfile.write(event(" fine") + b"<html>oops</html>\n\n")
        elif model == "slow":  # streams a word every 0.2 s, for a long time: killed or interrupted mid-stream
            self.stream_head()
            for i in range(600):
                self.wfile.write(event(f" word{i}"))
                self.wfile.flush()
                time.sleep(0.2)
        elif model == "silent":  # never answers
            time.sleep(600)
        else:
            self.reply(400, {"error": {"message": f"unknown model {model}"}})


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if len(sys.argv) > 3:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    with open(sys.argv[1], "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
