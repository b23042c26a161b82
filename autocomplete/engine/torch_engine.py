"""The torch engine: our compact forwards (autocomplete.engine.gpt2, .llama) or transformers' modeling, on the CPU,
CUDA or MPS. The reference the ONNX engine is tested against, and what runs what isn't exported."""

from __future__ import annotations

import copy

import numpy as np
import torch

from autocomplete.engine.kv_cache import KVCache


class TorchEngine:
    name = "torch"

    def __init__(self, model, precision: str = "fp32"):
        self.model = model
        self.precision = precision
        self.device = model.device.type
        weight = next(iter(model.parameters()), None)
        # A compact forward that changes how it lays out its keys (`cache_layout`) must not read caches written before
        self.identity = repr((self.name, str(model.device), type(model).__name__, getattr(model, "cache_layout", ""),
                              str(weight.dtype) if weight is not None else "", precision))

    @torch.inference_mode()
    def read(self, ids: list[int], after=None, room: int = 0):
        cache = None
        if after is not None:
            cache = after.with_room(len(ids) + room) if isinstance(after, KVCache) else copy.deepcopy(after)
        elif self._compact:
            cache = self.model.new_cache(1, len(ids) + room)
        x = torch.tensor([ids], dtype=torch.long, device=self.model.device)
        # logits_to_keep=1: only the last position is needed, and a long prompt's full logits cost gigabytes.
        out = self.model(input_ids=x, cache=cache, use_cache=True, logits_to_keep=1)
        return _numpy(out.logits[0, -1]), out.cache

    @torch.inference_mode()
    def extend(self, state, token: int) -> np.ndarray:
        x = torch.tensor([[token]], dtype=torch.long, device=self.model.device)
        out = self.model(input_ids=x, cache=state, use_cache=True, logits_to_keep=1)
        if out.cache is not state:
            raise RuntimeError("the model did not extend its cache in place")
        return _numpy(out.logits[0, -1])

    def tree(self, state):
        return Tree(self.model, state) if isinstance(state, KVCache) else Batches(self.model, state)

    def length(self, state) -> int:
        return state.length if isinstance(state, KVCache) else state.get_seq_length()

    def nbytes(self, state) -> int:
        if isinstance(state, KVCache):
            return state.kv.element_size() * state.kv[:, :, :, :, : state.length].numel()
        return sum(getattr(layer, kind).nbytes for layer in getattr(state, "layers", ()) for kind in ("keys", "values")
                   if getattr(layer, kind, None) is not None)

    def arrays(self, state) -> dict[str, np.ndarray] | None:
        if isinstance(state, KVCache):
            return {"kv": state.kv[:, :, :, :, : state.length].contiguous().cpu().numpy()}
        layers = getattr(state, "layers", None)
        if type(state).__name__ == "DynamicCache" and layers and all(type(x).__name__ == "DynamicLayer" for x in layers):
            return {f"{kind}{i}": getattr(layer, kind).contiguous().cpu().numpy() for i, layer in enumerate(layers)
                    for kind in ("keys", "values")}
        return None  # another kind of cache (sliding windows, say): computed in each process

    def from_arrays(self, arrays: dict[str, np.ndarray]):
        device = self.model.device
        if "kv" in arrays:
            if not self._compact:
                return None
            cache = KVCache.__new__(KVCache)
            cache.kv = torch.from_numpy(arrays["kv"]).to(device)
            cache.length = cache.kv.shape[4]
            return cache
        if self._compact:
            return None
        from transformers import DynamicCache

        cache = DynamicCache()
        for i in range(len(arrays) // 2):
            cache.update(torch.from_numpy(arrays[f"keys{i}"]).to(device),
                         torch.from_numpy(arrays[f"values{i}"]).to(device), i)
        return cache

    @property
    def _compact(self) -> bool:
        return hasattr(self.model, "new_cache")


def _numpy(logits: torch.Tensor) -> np.ndarray:
    return logits.float().cpu().numpy()


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.element_size() * tensor.numel()


class Tree:
    """The keys and values of every prefix the search has expanded, for our compact models: a new prefix is its
    parent plus one token, so a forward reads one token per row instead of the whole continuation again."""

    def __init__(self, model, prompt_cache: KVCache):
        self.model = model
        self.prompt = prompt_cache  # the frame and the prompt, shared by every row
        self.kv: dict[tuple[int, ...], torch.Tensor] = {(): prompt_cache.kv[:, :, :, :, :0]}  # [layers, 2, 1, H, n, D]
        self.nbytes = 0

    def holds(self, continuation: tuple[int, ...]) -> bool:
        return continuation in self.kv

    def drop(self, continuation: tuple[int, ...]) -> None:
        if continuation and continuation in self.kv:
            self.nbytes -= _nbytes(self.kv.pop(continuation))

    @torch.inference_mode()
    def next_logits(self, continuations: list[tuple[int, ...]]) -> np.ndarray:
        parents = list(dict.fromkeys(c[:-1] for c in continuations if c[:-1] not in self.kv))
        if parents:  # not read, or dropped: read first (a row reads its parent's keys and values)
            self.next_logits(parents)
        n = self.prompt.length
        own = [self.kv[c[:-1]] for c in continuations]  # the parents' keys and values after the prompt
        width = max(kv.shape[4] for kv in own)
        layers, two, _, heads, _, dim = self.prompt.kv.shape
        cache = KVCache.__new__(KVCache)
        cache.shared = self.prompt.kv[:, :, :, :, :n]  # read by every row, never copied
        cache.kv = self.prompt.kv.new_zeros((layers, two, len(continuations), heads, width + 1, dim))
        mask = torch.zeros(len(continuations), 1, 1, width + 1, dtype=torch.bool, device=cache.kv.device)
        mask[..., -1] = True  # the row's new token itself
        for row, kv in enumerate(own):
            cache.kv[:, :, row:row + 1, :, :kv.shape[4]] = kv
            mask[row, ..., :kv.shape[4]] = True  # padding after a shorter parent is never seen
        cache.length = width
        tokens = torch.tensor([[c[-1]] for c in continuations], device=cache.kv.device)
        positions = torch.tensor([[n + len(c) - 1] for c in continuations], device=cache.kv.device)
        logits = self.model(input_ids=tokens, cache=cache, positions=positions, attn_mask=mask).logits[:, -1]
        for row, (c, kv) in enumerate(zip(continuations, own)):
            self.drop(c)  # asked for again: read again
            self.kv[c] = torch.cat((kv, cache.kv[:, :, row:row + 1, :, width:width + 1]), dim=4)
            self.nbytes += _nbytes(self.kv[c])
        return _numpy(logits)


class Batches:
    """For other models (transformers' modeling): one forward for the whole batch, each continuation after the
    shared prompt cache, right-padded (causal attention never lets a real token see the padding after it), read at
    its own last position."""

    nbytes = 0  # each batch reads its rows whole: none kept

    def __init__(self, model, prompt_cache):
        self.model, self.prompt = model, prompt_cache

    def holds(self, continuation: tuple[int, ...]) -> bool:
        return True

    def drop(self, continuation: tuple[int, ...]) -> None:
        pass

    @torch.inference_mode()
    def next_logits(self, continuations: list[tuple[int, ...]]) -> np.ndarray:
        model = self.model
        lengths = [len(c) for c in continuations]
        width = max(lengths)
        rows = torch.tensor([list(c) + [c[-1]] * (width - len(c)) for c in continuations], device=model.device)
        cache = copy.deepcopy(self.prompt)
        cache.batch_repeat_interleave(len(continuations))
        # The output head (a fifth of a small model's weights) only at the positions some row ends at.
        ends = sorted(set(lengths))
        logits = model(input_ids=rows, cache=cache, use_cache=True,
                       logits_to_keep=torch.tensor([n - 1 for n in ends], device=model.device)).logits
        return _numpy(logits[torch.arange(len(continuations)), torch.tensor([ends.index(n) for n in lengths])])
