"""The exported graph on ONNX Runtime, CPU only, with numpy and onnxruntime alone (no torch: importing it costs
seconds of every shell call). The graph's interface (autocomplete.engine.onnx_export writes it), one sequence:

inputs   input_ids int64 [1, T]: the new tokens; position_ids int64 [1, T]: their positions in the text;
         attention_bias float32 [1, 1, T, K]: 0 where a new token may read a key, -inf where not (K = total keys, the
         new tokens' own included; each new token also reads only keys before it: attention is causal);
         seqlens_k int32 [1]: K - 1; total_sequence_length int32 []: K;
         logits_at int64 [N]: which of the T new tokens to give logits for;
         past.{layer}.key, past.{layer}.value float32 [1, H_kv, C, D]: the cache buffer, K <= C, its first K - T
         positions filled
outputs  logits float32 [1, N, V]; present.{layer}.key, .value: the same buffers, the new tokens' keys and values
         written at positions K - T ... K - 1

A Buffer binds its arrays as both past and present, so GroupQueryAttention appends in place: a step copies no
key or value. Several states may read one buffer (autocomplete.engine.onnx_engine says how).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort

from onnxruntime.capi import onnxruntime_pybind11_state as _state

TOKENS = ("input_ids", "position_ids", "attention_bias", "seqlens_k", "total_sequence_length")
LOGITS_AT = "logits_at"
MAX_KEYS = "max_keys"  # the graph's metadata: keys a run may read at most, where bounded
OUTPUTS = ("logits",)


def kv_names(layer: int, which: str) -> tuple[str, str]:
    """The graph's names of one layer's keys and values: which is "past" (inputs) or "present" (outputs)."""
    return f"{which}.{layer}.key", f"{which}.{layer}.value"


# What ONNX Runtime raises on a graph it can't load (a torn or foreign file): not subclasses of one another.
LOAD_ERRORS = (_state.InvalidProtobuf, _state.InvalidGraph, _state.Fail, _state.NoSuchFile, _state.InvalidArgument,
               _state.RuntimeException, _state.NotImplemented)


def session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # The pool's threads spin between a run's ops (a token's are ~300), and stop when the run returns: spinning on
    # after a run burned 0.04 CPU-seconds of the idle second after it; stopping cost no measurable decode speed.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # warnings about the (deliberately) hardware-specific saved graph are noise
    return options


def open_session(path: Path, threads: int) -> ort.InferenceSession:
    """A session on the graph as exported, already optimised then: no pass runs again."""
    options = session_options(threads)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def kv_shape(session: ort.InferenceSession) -> tuple[int, int, int, int]:
    """(layers, 2, key/value heads, head dim): a buffer's shape but for rows and positions."""
    _, H, _, D = next(i.shape for i in session.get_inputs() if i.name == "past.0.key")
    layers = sum(i.name.startswith("past.") for i in session.get_inputs()) // 2
    return layers, 2, int(H), int(D)


def max_keys(session: ort.InferenceSession) -> int | None:
    """The most keys one run may read (its rotary tables' rows), or None: no bound."""
    keys = session.get_modelmeta().custom_metadata_map.get(MAX_KEYS)
    return int(keys) if keys else None



class Buffer:
    """Keys and values [layers, 2, 1, H_kv, capacity, D], bound as the graph's past and present. `used`: how many
    positions hold keys (whoever wrote them); a state that ends there may append in place."""

    def __init__(self, session: ort.InferenceSession, kv_shape: tuple[int, int, int, int], capacity: int):
        L, two, H, D = kv_shape
        self.session, self.used = session, 0
        self.tail = None  # what holds the positions from tail.start on and can let them go (tail.evict())
        self.vocab = session.get_outputs()[0].shape[2]
        self.kv = np.empty((L, two, 1, H, max(1, capacity), D), dtype=np.float32)
        self.lock = threading.Lock()  # one run at a time: a run appends at `used`
        self._binding = session.io_binding()
        self._bind()

    @property
    def capacity(self) -> int:
        return self.kv.shape[4]

    def _bind(self) -> None:
        for layer in range(self.kv.shape[0]):
            for part, (past, present) in enumerate(zip(kv_names(layer, "past"), kv_names(layer, "present"))):
                view = self.kv[layer, part]
                self._binding.bind_input(past, "cpu", 0, np.float32, view.shape, view.ctypes.data)
                self._binding.bind_output(present, "cpu", 0, np.float32, view.shape, view.ctypes.data)

    def ends_at(self, length: int) -> bool:
        """Whether a state `length` long may append here: nothing written past it, or only what lets it go."""
        if self.used == length:
            return True
        if self.tail is not None and self.tail.start == length and self.tail.evict():
            self.used, self.tail = length, None
            return True
        return False

    def reserve(self, needed: int) -> None:
        """Room for `needed` positions: grown (doubling) by a copy of what is filled, never shrunk."""
        if needed > self.capacity:
            grown = np.empty((*self.kv.shape[:4], max(needed, 2 * self.capacity), self.kv.shape[5]), np.float32)
            grown[:, :, :, :, : self.used] = self.kv[:, :, :, :, : self.used]
            self.kv = grown
            self._bind()

    def run(self, ids: np.ndarray, positions: np.ndarray, bias: np.ndarray, logits_at: np.ndarray) -> np.ndarray:
        """Read ids [T] (at positions [T], seeing what bias [T, K] leaves each) appended at `used` = K - T: the
        logits [N, V] at logits_at. The caller holds the lock and has reserved room."""
        T, K = bias.shape
        assert K == self.used + T <= self.capacity
        feeds = {"input_ids": np.ascontiguousarray(ids, dtype=np.int64).reshape(1, T),
                 "position_ids": np.ascontiguousarray(positions, dtype=np.int64).reshape(1, T),
                 "attention_bias": np.ascontiguousarray(bias, dtype=np.float32).reshape(1, 1, T, K),
                 "seqlens_k": np.array([K - 1], dtype=np.int32), "total_sequence_length": np.array(K, dtype=np.int32),
                 LOGITS_AT: np.ascontiguousarray(logits_at, dtype=np.int64)}
        logits = np.empty((1, len(logits_at), self.vocab), dtype=np.float32)
        binding = self._binding  # every run binds each of these anew, and they live (feeds, logits) until it ends
        for name, array in feeds.items():
            binding.bind_cpu_input(name, array)
        binding.bind_output("logits", "cpu", 0, np.float32, logits.shape, logits.ctypes.data)
        self.session.run_with_iobinding(binding)
        self.used = K
        return logits[0]
