"""What the text layer needs from a model, whichever runs it (autocomplete.engine.onnx_engine on the CPU,
autocomplete.engine.torch_engine for the reference, GPUs and architectures not exported).

Logits come back as numpy float32, one row of the vocabulary per row asked for: sampling, healing, suggestions and
--explain are written once, over numpy, and never import torch.

A state is the keys and values of the tokens read so far (a frame, a prompt, what was generated): the engine's own
object, which the caller keeps and hands back. read() never changes the state it reads after (a frame is read after
by every completion); extend() grows a state in place. A Tree serves the suggestion search: rows that fork from one
state and grow a token at a time, each row's keys and values kept so a step reads one token per row.
"""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np

from autocomplete.errors import UsageError


class Tree(Protocol):
    nbytes: int  # the keys and values its rows hold

    def next_logits(self, continuations: list[tuple[int, ...]]) -> np.ndarray:
        """[len(continuations), vocab]: the next-token logits after the state the tree grew from, then each
        continuation (a tuple of token ids); where the tree doesn't hold a continuation's parent (all but its last
        token), it reads that first."""

    def holds(self, continuation: tuple[int, ...]) -> bool:
        """Whether the row's keys and values are kept (a child of it can be read)."""

    def drop(self, continuation: tuple[int, ...]) -> None:
        """Let the row's keys and values go where they can go alone (a row asked for again is read again)."""


class Engine(Protocol):
    name: str  # "onnx" or "torch"
    device: str  # where it runs: "cpu", "cuda", "mps"
    precision: str
    identity: str  # what a stored state depends on besides the model's files and the tokens (autocomplete.text.prompt)

    def read(self, ids: list[int], after=None, room: int = 0) -> tuple[np.ndarray, object]:
        """The logits [vocab] after `ids` read after `after` (left as it is), and the state after them; room: how
        many tokens the caller expects to add, so the state need not grow by copies."""

    def extend(self, state, token: int) -> np.ndarray:
        """Read one more token into `state` (in place): the logits [vocab] after it."""

    def tree(self, state) -> Tree: ...

    def length(self, state) -> int:
        """How many tokens the state holds."""

    def nbytes(self, state) -> int:
        """The memory its keys and values take (what autocomplete.engine.prefix counts against its budget)."""

    def arrays(self, state) -> dict[str, np.ndarray] | None:
        """The state as arrays to store (None: this kind of state isn't stored)."""

    def from_arrays(self, arrays: dict[str, np.ndarray]) -> object | None:
        """A state back from arrays() (None if they don't fit this engine)."""


def idle_cores() -> int:
    """Threads to run on. Decoding one token at a time is memory-bound: threads help only on idle cores. With a
    core busy elsewhere, threads waiting for each other make two threads ~10x slower than one, so count only idle
    cores. AUTOCOMPLETE_THREADS, when set, decides."""
    wanted = os.environ.get("AUTOCOMPLETE_THREADS", "").strip()
    if wanted:
        # ASCII digits only: isdigit() passes "²", which int() refuses, and isdecimal() "٣", which it reads as 3.
        if not (wanted.isascii() and wanted.isdecimal() and int(wanted) >= 1):
            raise UsageError(f"AUTOCOMPLETE_THREADS must be a whole number of threads, 1 or more, not {wanted!r}")
        return int(wanted)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    busy = round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
    return max(1, cores - busy)
