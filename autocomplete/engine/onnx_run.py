"""The exported graph on ONNX Runtime, CPU only, with numpy and onnxruntime alone (no torch: importing it costs
seconds of every shell call). The graph's interface (autocomplete.engine.onnx_export writes it):

inputs   input_ids int64 [B, T]; positions int64 [B, T] (absolute positions of the new tokens);
         mask bool [B, T, P + S + T] (True: this new token may attend that key; keys are shared, past, new);
         shared.{layer}.key, shared.{layer}.value float32 [1, H_kv, P, D] (what every row reads, broadcast over B);
         past.{layer}.key, past.{layer}.value float32 [B, H_kv, S, D] (each row's own, after the shared ones)
outputs  logits float32 [B, V] (each row's last position); present float32 [L, 2, B, H_kv, T, D] (the new tokens'
         keys and values, for the caller to append)

run() takes the keys and values stacked, [L, 2, 1 or B, H_kv, P or S, D], and gives the graph each layer's as a
view of that array: one input of them all made the graph split it, a copy of every key and value each call
(3.5 ms of a 28 ms call on SmolLM2-135M with 150 keys).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from onnxruntime.capi import onnxruntime_pybind11_state as _state

TOKENS = ("input_ids", "positions", "mask")


def inputs(layers: int) -> list[str]:
    """The graph's input names, in order."""
    return [*TOKENS, *(f"{which}.{layer}.{part}" for which in ("shared", "past") for layer in range(layers)
                       for part in ("key", "value"))]


# What ONNX Runtime raises on a graph it can't load (a torn or foreign file): not subclasses of one another.
LOAD_ERRORS = (_state.InvalidProtobuf, _state.InvalidGraph, _state.Fail, _state.NoSuchFile, _state.InvalidArgument,
               _state.RuntimeException, _state.NotImplemented)
OUTPUTS = ("logits", "present")


def session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # The pool spins between the graph's ops rather than sleeping after each (SmolLM2-135M has 1,361): a forward of
    # 8 rows took 58 ms against 68 (the AMX Xeon, numpy work between forwards as in a search). After a call it
    # spins on briefly, then sleeps: 0.06 CPU-seconds in the idle second after one, while the user types.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # warnings about the (deliberately) hardware-specific saved graph are noise
    return options


def open_session(path: Path, threads: int) -> ort.InferenceSession:
    """A session on the graph as exported, already optimised then: no pass runs again (ENABLE_ALL again took 0.3 s
    more to open SmolLM2-135M int8 and decoded no faster)."""
    options = session_options(threads)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def run(session: ort.InferenceSession, input_ids: np.ndarray, positions: np.ndarray, mask: np.ndarray,
        shared: np.ndarray, past: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logits [B, V], present [L, 2, B, H_kv, T, D]) for the new tokens; shared [L, 2, 1, H_kv, P, D] and past
    [L, 2, B, H_kv, S, D] stacked. Arrays of the right dtypes, C-contiguous, go in without a copy (session.run
    wraps them); IO binding with OrtValues measured no faster (within noise) on SmolLM2-135M at S = 250."""
    feeds = {"input_ids": _as(input_ids, np.int64), "positions": _as(positions, np.int64),
             "mask": _as(mask, np.bool_)}
    for which, stacked in (("shared", _as(shared, np.float32)), ("past", _as(past, np.float32))):
        for layer, (key, value) in enumerate(stacked):  # views: contiguous, as their stack is
            feeds[f"{which}.{layer}.key"], feeds[f"{which}.{layer}.value"] = key, value
    logits, present = session.run(OUTPUTS, feeds)
    return logits, present


def kv_shape(session: ort.InferenceSession) -> tuple[int, int, int, int]:
    """(layers, 2, key/value heads, head dim): the stacked keys and values' shape but for rows and positions."""
    _, H, _, D = next(i.shape for i in session.get_inputs() if i.name == "past.0.key")
    layers = sum(i.name.startswith("past.") for i in session.get_inputs()) // 2
    return layers, 2, int(H), int(D)


def _as(array: np.ndarray, dtype) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=dtype)
