"""A stand-in OpenAI-compatible server for the --api error paths only (the happy paths run against a real engine):
each model name asks for one behaviour, with responses shaped like real engines' (OpenAI's, FastAPI's, llama.cpp's).

    python replay_server.py PORT_FILE [CERT KEY]   # 127.0.0.1, a free port written to PORT_FILE; TLS with CERT
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def event(text: str, finish: str | None = None) -> bytes:
    choice = {"index": 0, "text": text, **({"finish_reason": finish} if finish else {})}
    return f"data: {json.dumps({'choices': [choice], 'object': 'text_completion'})}\n\n".encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def stream_head(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self.reply(200, {"object": "list", "data": [{"id": "alpha"}, {"id": "beta"}]})
        else:
            self.reply(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model = body.get("model")
        if model == "key":
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
