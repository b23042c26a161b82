"""The ONNX Runtime engine, the CPU default: our compact GPT-2 and Llama exported once per model and precision
(autocomplete.engine.onnx_export, which imports torch) into the cache, then run with numpy and onnxruntime only.

The graph reads new tokens after two sets of keys and values: `shared`, read by every row and never copied per
row (a frame, a prompt the suggestion search forks from), and `past`, each row's own. It returns the last
position's logits and the new tokens' keys and values, which the state appends to its own buffer.
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path

import numpy as np

from autocomplete import paths, terminal
from autocomplete.engine import compact
from autocomplete.engine.engine import idle_cores
from autocomplete.errors import UserError

# A new graph interface or export recipe: exports made before it are made again.
EXPORT_FORMAT = "onnx-export-4"
PRECISIONS = {"fp32": "fp32", "int8": "int8"}  # ours -> the exporter's


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
    files = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(directory.glob("*.safetensors"))]
    identity = repr((EXPORT_FORMAT, str(directory), files, precision))
    out = paths.cache_dir() / "onnx" / hashlib.sha256(identity.encode()).hexdigest()[:32]
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


class Rows:
    """Keys and values [layers, 2, rows, kv_heads, positions, head_dim]: `shared` before every row's own, read by
    all and never changed, then `kv`, of which the first `n` positions are filled.

    A graph input must be contiguous, and the first n positions of `kv` are not (its heads are `kv.shape[4]` apart),
    so a call copies them: what was read (a prompt) goes into `shared` instead, given to the graph as it is, and
    every FOLD tokens added one at a time join it (a copy of it all, once per FOLD tokens, not each token: after a
    512-token prompt, each token had copied 24 MB on SmolLM2-135M)."""

    FOLD = 32

    def __init__(self, shared: np.ndarray, kv: np.ndarray, n: int):
        self.shared, self.kv, self.n = shared, kv, n
        self._flat: np.ndarray | None = None

    @property
    def length(self) -> int:
        return self.shared.shape[4] + self.n

    def flat(self) -> np.ndarray:
        """Everything this state holds as one contiguous array (kept: a frame is read after many times)."""
        if not self.n:
            return self.shared
        if self._flat is None or self._flat.shape[4] != self.length:
            self._flat = np.concatenate((self.shared, self.kv[:, :, :, :, : self.n]), axis=4)
        return self._flat

    def fold(self) -> None:
        """The row's own keys and values joined to the shared ones (a state with one row)."""
        self.shared, self.n = self.flat(), 0

    def grow(self, needed: int) -> None:
        if needed > self.kv.shape[4]:
            L, two, B, H, _, D = self.kv.shape
            grown = np.empty((L, two, B, H, max(needed, 2 * self.kv.shape[4]), D), dtype=self.kv.dtype)
            grown[:, :, :, :, : self.n] = self.kv[:, :, :, :, : self.n]
            self.kv = grown


class OnnxEngine:
    name = "onnx"
    device = "cpu"

    def __init__(self, session, precision: str):
        from autocomplete.engine import onnx_run  # loads onnxruntime

        self.session, self.precision, self._run = session, precision, onnx_run.run
        self.kv_shape = onnx_run.kv_shape(session)
        self.identity = repr((self.name, EXPORT_FORMAT, precision))

    def _empty(self, rows: int, positions: int) -> np.ndarray:
        L, two, H, D = self.kv_shape
        return np.zeros((L, two, rows, H, positions, D), dtype=np.float32)

    def read(self, ids: list[int], after: Rows | None = None, room: int = 0):
        shared = after.flat() if after is not None else self._empty(1, 0)
        P, T = shared.shape[4], len(ids)
        causal = np.tril(np.ones((T, T), dtype=bool))
        mask = np.concatenate((np.ones((T, P), dtype=bool), causal), axis=1)[None]
        logits, present = self._run(self.session, np.array([ids], dtype=np.int64),
                                    np.arange(P, P + T, dtype=np.int64)[None], mask, shared, self._empty(1, 0))
        state = Rows(np.concatenate((shared, present), axis=4), self._empty(1, min(room, Rows.FOLD)), 0)
        return logits[0], state

    def extend(self, state: Rows, token: int) -> np.ndarray:
        if state.n >= Rows.FOLD:
            state.fold()
        P, n = state.shared.shape[4], state.n
        past = np.ascontiguousarray(state.kv[:, :, :, :, :n])
        logits, present = self._run(self.session, np.array([[token]], dtype=np.int64),
                                    np.array([[P + n]], dtype=np.int64), np.ones((1, 1, P + n + 1), dtype=bool),
                                    state.shared, past)
        state.grow(n + 1)
        state.kv[:, :, :, :, n:n + 1] = present
        state.n = n + 1
        return logits[0]

    def tree(self, state: Rows) -> Tree:
        return Tree(self, state)

    def length(self, state: Rows) -> int:
        return state.length

    def nbytes(self, state: Rows) -> int:
        return state.shared.nbytes + state.kv[:, :, :, :, : state.n].nbytes

    def arrays(self, state: Rows) -> dict[str, np.ndarray]:
        return {"kv": state.flat()}

    def from_arrays(self, arrays: dict[str, np.ndarray]) -> Rows | None:
        kv = arrays.get("kv")
        if kv is None or kv.ndim != 6 or kv.dtype != np.float32 or kv.shape[2] != 1 or \
                (kv.shape[0], kv.shape[1], kv.shape[3], kv.shape[5]) != self.kv_shape:
            return None
        return Rows(np.ascontiguousarray(kv), self._empty(1, 0), 0)


class Tree:
    """The suggestion search's rows: every prefix expanded keeps its own keys and values after the state it forked
    from, so a step reads one token per row."""

    def __init__(self, engine: OnnxEngine, state: Rows):
        self.engine = engine
        self.shared = state.flat()  # [layers, 2, 1, H, n, D]: the frame and the prompt
        self.kv: dict[tuple[int, ...], np.ndarray] = {(): engine._empty(1, 0)}

    def next_logits(self, continuations: list[tuple[int, ...]]) -> np.ndarray:
        P, B = self.shared.shape[4], len(continuations)
        own = [self.kv[c[:-1]] for c in continuations]  # the parents'
        width = max(kv.shape[4] for kv in own)
        past = self.engine._empty(B, width)
        mask = np.zeros((B, 1, P + width + 1), dtype=bool)
        mask[:, :, :P] = True
        mask[:, :, -1] = True  # the row's new token itself
        for row, kv in enumerate(own):
            past[:, :, row:row + 1, :, : kv.shape[4]] = kv
            mask[row, :, P:P + kv.shape[4]] = True  # padding after a shorter parent is never seen
        ids = np.array([[c[-1]] for c in continuations], dtype=np.int64)
        positions = np.array([[P + len(c) - 1] for c in continuations], dtype=np.int64)
        logits, present = self.engine._run(self.engine.session, ids, positions, mask, self.shared, past)
        for row, (c, kv) in enumerate(zip(continuations, own)):
            self.kv[c] = np.concatenate((kv, present[:, :, row:row + 1]), axis=4)
        return logits
