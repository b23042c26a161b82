"""What the model reads for one prompt: the style's hidden frame (its KV cache computed once per model), then the
prompt's tokens up to the word being typed, which the first generated tokens spell again (autocomplete.text.heal).

Every mode goes through prepare(): one-shot completions, --suggest, --explain, the REPL's ghost text, the server.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from autocomplete import paths, terminal
from autocomplete.text import frames
from autocomplete.text.caches import kept
from autocomplete.text.heal import Healing, Vocab, back_up

if TYPE_CHECKING:
    from autocomplete.engine.models import LoadedModel


@dataclass
class Frame:
    """Example queries, one per line, before the prompt. All its tokens but the last are in `cache`; the last
    (a line break) is read with the prompt, so a prompt that is all word-being-typed still gives the model input."""

    ids: list[int]
    last: int
    cache: object | None


@dataclass
class Prompt:
    style: str  # what runs: "query" or "text"
    ids: list[int]  # read after the frame's cache: the frame's last token, the prompt up to the word being typed
    frame: Frame | None
    healing: Healing | None  # None when there is nothing to spell again
    max_new: int  # tokens to generate at most, the typed letters spelled again included
    prompt_tokens: int  # the prompt's own tokens as the model reads them (the frame not counted)
    vocab: Vocab

    def after(self):
        """The engine's state to read `ids` after: the frame's, which reading leaves as it is (None: no frame)."""
        return self.frame.cache if self.frame else None

    def root(self, lm: LoadedModel, grown: bool = False, ids: list[int] | None = None):
        """The read of `ids` (these: its own) after the frame, remembered (autocomplete.engine.prefix): a later request
        with the same start (the next keystroke's) finds it read, and its search's rows too. grown: a row of an
        earlier read's tree holding these tokens will do (the suggestion search's, which rounding does not change)."""
        if lm.prefixes is None:
            from autocomplete.engine.prefix import Prefixes  # loads numpy

            lm.prefixes = Prefixes()
        return lm.prefixes.root(lm.engine, self.ids if ids is None else ids, self.after(),
                                tuple(self.frame.ids) if self.frame else None, grown=grown)

    def allowed(self, generated: list[int]):
        return self.healing.allowed(generated) if self.healing else None

    def shown(self, new: list[int]) -> str:
        """The text of the generated ids after the typed letters they spell again: what the completion adds."""
        skip = len(self.healing.tail) if self.healing else 0
        return self.vocab.bytes_of(new)[skip:].decode("utf-8", errors="replace")


# More characters than a token of any ordinary text spans: a text far longer than the window is tokenized only from
# where its last window's worth of tokens can begin (1 MB on stdin: a quarter of it, and its tokens' memory).
CHARS_PER_TOKEN = 32


def prepare(lm: LoadedModel, text: str, style: str = "auto", examples: list[str] | None = None,
            max_new: int = 24, quiet: bool = False) -> Prompt:
    style = frames.resolve(style, text)
    frame = frame_for(lm, examples or list(frames.EXAMPLES)) if style == "query" else None
    vocab = vocabulary(lm)
    cut = len(text) > CHARS_PER_TOKEN * lm.context_length
    ids = lm.encode(text[-CHARS_PER_TOKEN * lm.context_length:] if cut else text, special=frame is None)
    kept, tail = back_up(ids, vocab)
    spell = len(ids) - len(kept)
    lead = None  # a token read before the prompt's own
    if frame is not None:
        lead = frame.last
    elif not kept:  # the whole prompt is the word being typed: the model starts from the start of a text
        lead = lm.tokenizer.bos_token_id if lm.tokenizer.bos_token_id is not None else lm.tokenizer.eos_token_id
        if lead is None:
            kept, tail, spell = ids, b"", 0  # nothing to start from: no healing
    room = lm.context_length - (len(frame.ids) if frame else 0) - (lead is not None)
    fitted, max_new = fit_to_context(kept, room, max_new + spell, None if frame else lm.tokenizer.bos_token_id)
    if len(fitted) < len(kept) and not quiet:
        terminal.notice(f"The prompt is {'over ' * cut}{len(ids)} tokens; keeping its last {len(fitted) + spell} "
                        f"({lm.name} reads at most {lm.context_length}).")
    return Prompt(style, ([lead] if lead is not None else []) + fitted, frame,
                  Healing(vocab, tail, fold=style == "query") if tail else None, max_new, len(fitted) + spell, vocab)


def fit_to_context(ids: list[int], context: int, max_new: int, bos: int | None) -> tuple[list[int], int]:
    """Keep the prompt's last part so prompt + completion fit the context window; returns (ids, max_new)."""
    max_new = min(max_new, context - 1)
    keep = context - max_new
    if len(ids) <= keep:
        return ids, max_new
    if bos is not None and ids and ids[0] == bos:  # a model trained with a BOS token keeps it
        return [bos] + ids[len(ids) - keep + 1:], max_new
    return ids[len(ids) - keep:], max_new


def vocabulary(lm: LoadedModel) -> Vocab:
    """Every token's bytes, for healing: read from disk where an earlier call kept them (a cold call's ~80 ms of
    building them from the tokenizer become ~20), else built and kept."""
    if kept(lm).vocab is None:
        stored = _stored_vocab_path(lm)
        try:
            kept(lm).vocab = Vocab.from_bytes(stored.read_bytes()) if stored and stored.is_file() else None
            if kept(lm).vocab is not None:
                paths.touch(stored)
        except (OSError, ValueError):
            kept(lm).vocab = None  # torn or foreign: built again
        if kept(lm).vocab is None:
            kept(lm).vocab = Vocab(lm.tokenizer)
            if stored is not None:  # to_bytes sorts both orders: only worth it when they are kept
                data = kept(lm).vocab.to_bytes()
                _write_atomically(stored, lambda tmp: Path(tmp).write_bytes(data))
    return kept(lm).vocab


_VOCAB_FORMAT = "vocab-1"


def _stored_vocab_path(lm: LoadedModel) -> Path | None:
    """Keyed by the tokenizer's file (path, size, time): a changed tokenizer is read anew."""
    tokenizer = Path(lm.directory).resolve() / "tokenizer.json" if lm.directory else None
    if tokenizer is None or not tokenizer.is_file():
        return None
    stat = tokenizer.stat()
    return paths.entry("vocab", (_VOCAB_FORMAT, str(tokenizer), stat.st_size, stat.st_mtime_ns, len(lm.tokenizer)),
                       ".bin")


# Frames kept in memory per model, the last used: the built-in one and a few --examples lists a server is sent.
# Each is a KV cache of up to half the context (~40 MB for GPT-2-124M), and requests choose the lists.
FRAMES_KEPT = 4


def frame_for(lm: LoadedModel, examples: list[str]) -> Frame:
    """The frame for these examples, computed once per model: as many as fit in half the context window. Its KV
    cache is also kept on disk, so a cold one-shot call loads it (milliseconds) instead of computing it (~0.4 s
    for GPT-2-124M)."""
    key = tuple(examples)
    frame = kept(lm).frames.pop(key, None)
    if frame is None:
        half = lm.context_length // 2
        lines = list(examples)
        ids = lm.encode("\n".join(lines) + "\n", special=True)
        while len(ids) > half and len(lines) > 1:
            lines = lines[: len(lines) * 3 // 4] if len(ids) > lm.context_length else lines[:-1]
            ids = lm.encode("\n".join(lines) + "\n", special=True)
        # A lone line still too long: keep its last tokens. They end with the line break the prompt follows, and
        # what the user gave is still read (dropping the line would leave no example at all); its start (and a
        # BOS token, if any) go, which a hidden frame can spare.
        ids = ids[-half:]
        cache = None
        if len(ids) > 1:
            stored = _stored_path(lm, ids)
            cache = _load_cache(stored, lm, len(ids) - 1)
            if cache is None:
                cache = _compute_cache(lm, ids[:-1])
                _save_cache(lm, cache, stored)
            else:
                paths.touch(stored)
        frame = Frame(ids[:-1], ids[-1], cache)
    kept(lm).frames[key] = frame  # last: the most recently used (dicts keep their order)
    while len(kept(lm).frames) > FRAMES_KEPT:
        del kept(lm).frames[next(iter(kept(lm).frames))]
    return frame


def _compute_cache(lm: LoadedModel, ids: list[int]):
    return lm.engine.read(ids)[1]


_FORMAT = "frame-cache-2"


def _stored_path(lm: LoadedModel, ids: list[int]) -> Path | None:
    """Where this model's cache of these frame tokens is kept: keyed by the model's files (path, size, time), the
    tokens and the engine (which, where, at what precision, how it lays out its keys), so any change computes it
    anew."""
    if lm.directory is None:
        return None
    directory = Path(lm.directory).resolve()
    return paths.entry("frames", (_FORMAT, str(directory), paths.weights(directory), ids, lm.engine.identity),
                       ".safetensors")


def _save_cache(lm: LoadedModel, cache, path: Path | None) -> None:
    """Best effort: a cache that can't be written is computed again next time."""
    arrays = lm.engine.arrays(cache)
    if path is None or arrays is None:
        return
    from safetensors.numpy import save_file

    _write_atomically(path, lambda tmp: save_file(arrays, tmp))


# Stored frames and vocabularies kept per cache directory, the last used: each model and examples list in use
# has one (a frame is ~10-40 MB), and one dropped is only made again (a second or less).
_STORED_KEPT = 8


def _write_atomically(path: Path | None, write) -> None:
    """Best effort (what can't be written is computed again next time), owner-only (mkstemp's 0600), never seen
    half-written: write(a temporary path beside it, its name starting with "." while written), then renamed into
    place. A new file is the one time its directory is pruned."""
    if path is None:
        return
    import tempfile

    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(fd)
        write(tmp)
        os.replace(tmp, path)
    except OSError:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return
    paths.prune(path.parent, keep=_STORED_KEPT)


def _load_cache(path: Path | None, lm: LoadedModel, length: int):
    if path is None or not path.is_file():
        return None
    from safetensors.numpy import load_file

    try:
        cache = lm.engine.from_arrays(load_file(path))
    except Exception:  # a torn or foreign file: compute it again
        return None
    return cache if cache is not None and lm.engine.length(cache) == length else None
