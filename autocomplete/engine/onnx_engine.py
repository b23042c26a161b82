"""The ONNX Runtime engine, the CPU default: our compact GPT-2 and Llama exported once per model and precision
(autocomplete.engine.onnx_export, which imports torch) into the cache, then run with numpy and onnxruntime only.

A state is a buffer of keys and values that the graph appends to in place (onnx_run.Buffer) and how many of its
positions are the state's; the suggestion search's rows are positions of one sequence after the state they grow
from, each reading its ancestors only (Tree).
"""

from __future__ import annotations

import os
import platform
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from autocomplete import paths, terminal
from autocomplete.engine import compact
from autocomplete.engine.engine import idle_cores
from autocomplete.errors import UserError

if TYPE_CHECKING:
    from autocomplete.engine.onnx_run import Buffer

# A new graph interface or export recipe: exports made before it are made again.
EXPORT_FORMAT = "onnx-export-7"
PRECISIONS = {"fp32": "fp32", "int8": "int8", "int4": "int4"}  # ours -> the exporter's (int4: the benchmark's)


def chosen(engine: str, directory: Path, device: str) -> bool:
    """Whether ONNX Runtime runs this model: always with --engine onnx (or a clear error why it can't), never with
    --engine torch; with auto, on the CPU, for the architectures it exports."""
    if engine == "torch":
        return False
    exported = compact.architecture(directory) is not None
    if engine == "onnx":
        if not exported:
            raise UserError("--engine onnx runs GPT-2 and Llama checkpoints (safetensors, tokenizer.json); "
                            "use --engine torch for this model")
        if device not in ("auto", "cpu"):
            raise UserError(f"--engine onnx runs on the CPU (not {device}); use --engine torch there")
        if not _onnxruntime_installed():
            raise UserError("--engine onnx needs onnxruntime: pip install onnxruntime")
        return True
    if not exported or device not in ("auto", "cpu") or not _onnxruntime_installed():
        return False
    return device == "cpu" or not _gpu_visible()


def _onnxruntime_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def _gpu_visible() -> bool:
    """A GPU torch would pick with --device auto, seen without importing torch (which costs seconds): NVIDIA's
    driver on Linux, Apple silicon (MPS)."""
    if platform.system() == "Darwin":
        return platform.machine() == "arm64"
    return os.path.exists("/proc/driver/nvidia/version")


def load(directory: Path, precision: str, shown: str) -> OnnxEngine:
    from autocomplete.engine import onnx_run  # loads onnxruntime

    threads = idle_cores()  # a bad AUTOCOMPLETE_THREADS says so before anything is read or exported
    path = exported(directory, precision, shown)
    try:
        session = onnx_run.open_session(path, threads)
    except onnx_run.LOAD_ERRORS:  # a torn or foreign file: exported again
        path.unlink(missing_ok=True)
        session = onnx_run.open_session(exported(directory, precision, shown), threads)
    return OnnxEngine(session, precision)


def exported(directory: Path, precision: str, shown: str) -> Path:
    """The model's graph at this precision, exported the first time (one status line) and kept in the cache,
    keyed by the model's files: a changed checkpoint is exported anew."""
    directory = directory.resolve()
    out = paths.entry("onnx", (EXPORT_FORMAT, str(directory), paths.weights(directory), precision))
    graph = out / "model.onnx"
    if graph.is_file():
        paths.touch(out)
        return graph
    model = compact.module(compact.architecture(directory)).load(directory)  # weights that don't load say so first
    with terminal.status(f"Preparing {shown} for ONNX Runtime ({precision}; once, under a minute)…", plain=True):
        from autocomplete.engine import onnx_export  # loads torch

        onnx_export.export(model, out, PRECISIONS[precision])
    paths.prune(out.parent, keep=_EXPORTS_KEPT)
    return graph


_EXPORTS_KEPT = 6  # models x precisions in use; one dropped is only exported again (under a minute)


class State:
    """What was read: the first `length` positions of a Buffer. Those positions never change (a buffer is only
    appended to), so states share buffers: a state that ends where its buffer's written part ends appends in place
    (a completion, a Tree); any other copies its positions into a buffer of its own first (moves). A Tree's rows
    written after a state give way to the state (the tree reads them again where it is asked for them again), so a
    completion after a search copies nothing."""

    def __init__(self, buffer: Buffer, length: int):
        self.buffer, self.length = buffer, length


class OnnxEngine:
    name = "onnx"
    device = "cpu"
    CHUNK = 256  # a prompt is read this many tokens a run: bounded memory (attention's [T, keys] scores a layer)
    SLACK = 256  # positions a new buffer has beyond what is asked (unwritten memory costs nothing until used)
    # Reading after a state this long appends in its buffer where it can (a copy costs more than the memory it
    # saves); after a shorter one (a frame, kept for every request) into a copy, which leaves its buffer as it is.
    SHARE = 1024

    def __init__(self, session, precision: str):
        from autocomplete.engine import onnx_run  # loads onnxruntime

        self.session, self.precision, self._new = session, precision, onnx_run.Buffer
        self.kv_shape, self.max_keys = onnx_run.kv_shape(session), onnx_run.max_keys(session)
        L, two, H, D = self.kv_shape
        self.per_token = L * two * H * D * 4  # float32
        self.identity = repr((self.name, EXPORT_FORMAT, precision))

    def _buffer(self, after: State | None, needed: int) -> Buffer:
        """A new buffer holding `after`'s positions, with room for `needed` positions in all."""
        buffer = self._new(self.session, self.kv_shape, needed + self.SLACK)
        if after is not None and after.length:
            buffer.kv[:, :, :, :, : after.length] = after.buffer.kv[:, :, :, :, : after.length]
            buffer.used = after.length
        return buffer

    def _append(self, state: State, ids: list[int], positions, bias, logits_at) -> np.ndarray:
        """Run `ids` after `state` in place, counted in it; a state another wrote past moves to a buffer of its own
        first."""
        T = len(ids)
        while True:
            buffer = state.buffer
            with buffer.lock:
                if buffer.ends_at(state.length):
                    buffer.reserve(state.length + T)
                    logits = buffer.run(np.asarray(ids), positions, bias, logits_at)
                    state.length += T
                    return logits
            state.buffer = self._buffer(state, state.length + T)

    def read(self, ids: list[int], after: State | None = None, room: int = 0):
        """Read after `after` (left as it is), CHUNK tokens a run, the logits of the last only."""
        start = after.length if after is not None else 0
        if after is not None and start >= self.SHARE:
            state = State(after.buffer, start)
            with after.buffer.lock:
                after.buffer.reserve(start + len(ids) + room)
        else:
            state = State(self._buffer(after, start + len(ids) + room), start)
        logits = None
        for i in range(0, len(ids), self.CHUNK):
            chunk = ids[i:i + self.CHUNK]
            T, K = len(chunk), state.length + len(chunk)
            last = i + self.CHUNK >= len(ids)
            logits = self._append(state, chunk, np.arange(K - T, K), np.zeros((T, K), np.float32),
                                  np.array([T - 1] if last else [], dtype=np.int64))
        return logits[0], state

    def extend(self, state: State, token: int) -> np.ndarray:
        K = state.length + 1
        return self._append(state, [token], np.array([K - 1]), np.zeros((1, K), np.float32), _FIRST)[0]

    def tree(self, state: State) -> Tree:
        return Tree(self, state)

    def length(self, state: State) -> int:
        return state.length

    def nbytes(self, state: State) -> int:
        return state.length * self.per_token

    def arrays(self, state: State) -> dict[str, np.ndarray]:
        return {"kv": np.ascontiguousarray(state.buffer.kv[:, :, :, :, : state.length])}

    def from_arrays(self, arrays: dict[str, np.ndarray]) -> State | None:
        kv = arrays.get("kv")
        if kv is None or kv.ndim != 6 or kv.dtype != np.float32 or kv.shape[2] != 1 or \
                (kv.shape[0], kv.shape[1], kv.shape[3], kv.shape[5]) != self.kv_shape:
            return None
        buffer = self._new(self.session, self.kv_shape, kv.shape[4] + self.SLACK)
        buffer.kv[:, :, :, :, : kv.shape[4]] = kv
        buffer.used = kv.shape[4]
        return State(buffer, kv.shape[4])


_FIRST = np.array([0])


class Tree:
    """The suggestion search's rows as one sequence after the state it grows from: each row read is one more
    position (its token's keys and values, written once), and a row reads the state, its ancestors' positions and
    its own (attention_bias hides the rest), at the position in the text its depth gives. A step reads one token
    per row; no row's keys are copied."""

    # Rows after the base at most: past them the sequence begins again. Every row read attends over all of them, so
    # a long sequence makes each run slower; rows given up are read again as needed.
    ROWS = 256

    def __init__(self, engine: OnnxEngine, state: State):
        self.engine, self.start = engine, state.length
        self.cursor = State(state.buffer, state.length)  # the base's positions, then every row read
        self.at: dict[tuple[int, ...], int] = {}  # a row's position in the buffer
        self._own = None  # the buffer a restart made (the base's positions copied), only this tree's
        self._lock = threading.Lock()  # a step, or the rows giving way (evict)

    @property
    def nbytes(self) -> int:
        return len(self.at) * self.engine.per_token

    def holds(self, continuation: tuple[int, ...]) -> bool:
        return not continuation or continuation in self.at

    def drop(self, continuation: tuple[int, ...]) -> None:
        pass  # a position in the sequence stays (later rows may read it)

    def evict(self) -> bool:
        """The rows written after the base given up, if no step is under way (the buffer's lock is held)."""
        if not self._lock.acquire(blocking=False):
            return False
        self.at.clear()
        self.cursor.length = self.start
        self._lock.release()
        return True

    def next_logits(self, continuations: list[tuple[int, ...]]) -> np.ndarray:
        """Rows whose ancestors aren't held (never read, or given up) read them first, in the same run."""
        with self._lock:
            def ancestors() -> list[tuple[int, ...]]:
                return sorted({c[:i] for c in continuations for i in range(1, len(c)) if c[:i] not in self.at}, key=len)

            rows = ancestors() + list(continuations)
            keys = self.cursor.length + len(rows)
            if keys - self.start > self.ROWS or self.engine.max_keys is not None and keys > self.engine.max_keys:
                self._restart()
                rows = ancestors() + list(continuations)
            return self._read(rows, len(rows) - len(continuations))

    def _read(self, rows: list[tuple[int, ...]], skip: int) -> np.ndarray:
        """Read `rows` (each one's parent held or before it here) in one run: the logits of those after the first
        `skip`."""
        B, n, P = len(rows), self.cursor.length, self.start
        bias = np.full((B, n + B), -np.inf, dtype=np.float32)
        bias[:, :P] = 0.0
        here: dict[tuple[int, ...], int] = {}
        for row, c in enumerate(rows):
            bias[row, [here.get(c[:i], self.at.get(c[:i], -1)) for i in range(1, len(c))]] = 0.0
            bias[row, n + row] = 0.0
            here[c] = n + row
        positions = np.array([P + len(c) - 1 for c in rows])
        logits = self.engine._append(self.cursor, [c[-1] for c in rows], positions, bias, np.arange(skip, B))
        if n == P:  # the first rows after the base: they give way to it (a completion after the search)
            self.cursor.buffer.tail = self
        self.at.update(here)
        return logits

    def _restart(self) -> None:
        """The rows forgotten and the sequence begun again after the base, in a buffer of its own: it would pass
        ROWS, or what the graph can index (the rotary tables' rows). A buffer an earlier restart made holds the
        base's positions already and no one else's: begun again in place (a new one took 14 ms for the starter)."""
        buffer = self.cursor.buffer
        if buffer is not self._own:
            buffer = self._own = self.engine._buffer(State(buffer, self.start), self.start)
        with buffer.lock:
            buffer.used, buffer.tail = self.start, None
        self.cursor = State(buffer, self.start)
        self.at.clear()
