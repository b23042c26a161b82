"""Styles: auto's choice, the hidden frame (never shown, computed once per model), and --examples files."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from autocomplete.text import frames
from autocomplete.text.complete import complete
from autocomplete.errors import UsageError
from autocomplete.text.caches import kept
from autocomplete.text.prompt import frame_for, prepare
from autocomplete.settings import Params

EXAMPLES = ["zebra quilt", "violet xylophone", "amber kettle"]  # nothing the tiny model ever saw


@pytest.mark.parametrize("text, style", [
    ("san", "query"), ("stock mar", "query"), ("how to make cold brew coffee at ho", "query"),
    ("The capital of Fra", "query"), ("u.s. open", "query"), ("3.5 inch floppy", "query"),
    ("one two three four five six seven eight nine", "text"), ("It rained. Then", "text"),
    ("first line\nsecond", "text"), ("Dear team, thanks!", "text"), ("Note: The", "text"),
    ("what is love?", "query"), ("It ends here.", "text"),
])
def test_auto_is_query_for_a_short_line_and_text_otherwise(text, style):
    assert frames.resolve("auto", text) == style
    assert frames.resolve("text", "san") == "text" and frames.resolve("query", text) == "query"


def test_built_in_frame_is_varied_and_lower_case():
    assert len(frames.EXAMPLES) >= 20 and len(set(frames.EXAMPLES)) == len(frames.EXAMPLES)
    assert all(line == line.lower() and line.strip() == line and "\n" not in line for line in frames.EXAMPLES)
    first_words = [line.split()[0] for line in frames.EXAMPLES]
    assert max(first_words.count(w) for w in first_words) <= len(frames.EXAMPLES) // 4


def test_the_frame_is_computed_once_per_model(tiny, monkeypatch):
    lengths = []
    real = tiny.engine.read

    def read(ids, after=None, room=0):
        lengths.append(len(ids))
        return real(ids, after, room)

    monkeypatch.setattr(tiny.engine, "read", read)
    settings = Params(temperature=0, max_tokens=3, style="query", examples=EXAMPLES)
    complete(tiny, "san", settings, lambda piece: None)
    frame = frame_for(tiny, EXAMPLES)
    first, lengths[:] = list(lengths), []
    assert len(frame.ids) in first  # the frame went through the model once…
    # …and not again: "seoul" is all word being typed, so what is read before it is the frame's last token (a line
    # break), remembered from "san" (autocomplete.engine.prefix); then only the whole word chosen for it
    done = complete(tiny, "seoul", settings, lambda piece: None)
    assert lengths[-1] == len(done.word.tokens) and sum(lengths) < len(frame.ids)
    assert frame_for(tiny, EXAMPLES) is frame and tiny.engine.length(frame.cache) == len(frame.ids)


def _storage(state) -> int:
    """Where a state's own keys and values live (either engine's)."""
    kv = state.buffer.kv if hasattr(state, "buffer") else state.kv
    return kv.data_ptr() if hasattr(kv, "data_ptr") else kv.ctypes.data


def test_a_completion_copies_the_frame_cache_once(tiny):
    """A completion's state has room for the prompt and every new token, so it never grows (a second copy of
    everything) during the completion; the frame's own state stays as it was."""
    prompt = prepare(tiny, "san", "query", EXAMPLES, max_new=5)
    frame = frame_for(tiny, EXAMPLES)
    logits, state = tiny.engine.read(prompt.ids, prompt.after(), room=prompt.max_new)
    storage = _storage(state)
    for _ in range(prompt.max_new):
        logits = tiny.engine.extend(state, int(logits.argmax()))
    assert _storage(state) == storage
    assert tiny.engine.length(state) == len(frame.ids) + len(prompt.ids) + prompt.max_new
    assert tiny.engine.length(frame.cache) == len(frame.ids)


def test_a_frame_too_long_for_the_context_keeps_what_fits(tiny):
    frame = frame_for(tiny, [f"query number {i}" for i in range(40)])
    assert len(frame.ids) + 1 <= tiny.context_length // 2
    read = prepare(tiny, "san", "query", [f"query number {i}" for i in range(40)], 24, quiet=True)
    assert len(frame.ids) + len(read.ids) + read.max_new <= tiny.context_length


def test_framing_never_reaches_the_output(cli, tiny_dir, tiny, tmp_path):
    examples = tmp_path / "examples.txt"
    examples.write_text("\n".join(EXAMPLES) + "\n")
    for prompt in ("san fr", "seoul"):
        shown = cli("-m", str(tiny_dir), "--style", "query", "--examples", str(examples), "-t", "0", prompt)
        as_json = cli("-m", str(tiny_dir), "--style", "query", "--examples", str(examples), "-t", "0", "--json",
                      prompt)
        assert shown.returncode == 0 and as_json.returncode == 0, shown.stderr + as_json.stderr
        record = json.loads(as_json.stdout)
        assert record["prompt"] == prompt and record["style"] == "query"
        assert shown.stdout.decode() == prompt + record["completion"] + "\n"  # one line: the query
        assert "\n" not in record["completion"]
        for line in EXAMPLES:
            assert line.split()[0] not in shown.stdout.decode() and line.split()[0] not in as_json.stdout.decode()
        assert "examples" not in record["settings"] and record["settings"]["style"] == "query"
        assert record["stats"]["prompt_tokens"] == len(tiny.encode(prompt))  # the frame's tokens are not counted


def test_default_style_is_auto(cli, tiny_dir):
    env = {"AUTOCOMPLETE_STYLE": ""}  # unset: the default
    short = json.loads(cli("-m", str(tiny_dir), "-t", "0", "--json", "san", extra_env=env).stdout)
    long = json.loads(cli("-m", str(tiny_dir), "-t", "0", "--json", input=b"the best way to learn python is. To",
                          extra_env=env).stdout)
    assert short["style"] == "query" and short["settings"]["style"] == "auto"
    assert long["style"] == "text"
    assert json.loads(cli("-m", str(tiny_dir), "-t", "0", "--json", "san",
                          extra_env={"AUTOCOMPLETE_STYLE": "text"}).stdout)["style"] == "text"


@pytest.mark.parametrize("content, says", [
    (None, "no such file"), (b"", "no example queries"), (b"\n  \n", "no example queries"),
    (b"abc\0def\n", "binary"), (b"caf\xe9\n", "not UTF-8"), (b"x" * (frames.MAX_EXAMPLES_BYTES + 1), "too large"),
])
def test_bad_examples_files_are_one_line_and_exit_2(cli, tiny_dir, tmp_path, content, says):
    path = tmp_path / "examples.txt"
    if content is not None:
        path.write_bytes(content)
    result = cli("-m", str(tiny_dir), "--examples", str(path), "san")
    err = result.stderr.decode()
    assert result.returncode == 2 and says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert result.stdout == b""


def test_a_directory_is_not_an_examples_file(tmp_path):
    with pytest.raises(UsageError, match="a directory"):
        frames.read_examples(str(tmp_path))


def test_examples_file_lines(tmp_path):
    path = tmp_path / "e.txt"
    path.write_text("  cheap   flights \n\nweather\r\n")
    assert frames.read_examples(str(path)) == ["cheap flights", "weather"]


def test_the_frame_cache_kept_on_disk_equals_the_computed_one(tiny, tmp_path, monkeypatch):
    stored_frame_equals_computed(tiny, "tiny", tmp_path, monkeypatch)


def test_the_frame_cache_kept_on_disk_equals_the_computed_one_on_the_real_model(smol, tmp_path, monkeypatch):
    stored_frame_equals_computed(smol, "smol", tmp_path, monkeypatch)


def stored_frame_equals_computed(lm, model, tmp_path, monkeypatch):
    from autocomplete.text import prompt

    monkeypatch.setenv("AUTOCOMPLETE_CACHE_DIR", str(tmp_path))
    examples = ["zebra quilt", "violet xylophone", f"{model} kettle"]
    ids = lm.encode("\n".join(examples) + "\n")
    path = prompt._stored_path(lm, ids)
    assert not path.exists()
    computed = prompt._compute_cache(lm, ids[:-1])
    prompt._save_cache(lm, computed, path)
    assert path.stat().st_mode & 0o077 == 0  # the user's own
    loaded = prompt._load_cache(path, lm, len(ids) - 1)
    assert type(loaded) is type(computed)
    after = [ids[-1]] + lm.encode("san", special=False)
    assert np.array_equal(lm.engine.read(after, loaded)[0], lm.engine.read(after, computed)[0])
    assert prompt._load_cache(path, lm, len(ids)) is None  # not the frame asked for: computed again
    path.write_bytes(b"torn")
    assert prompt._load_cache(path, lm, len(ids) - 1) is None


def test_a_stored_frame_is_not_read_by_a_forward_that_lays_out_keys_otherwise(smol_torch, tiny_dir, tmp_path,
                                                                               monkeypatch):
    """Keys kept on disk by an older forward (say, before rotary pairs sat side by side) would be read as garbage;
    so would one engine's keys read by the other."""
    from autocomplete.engine import models
    from autocomplete.engine.torch_engine import TorchEngine

    before = TorchEngine(smol_torch.model).identity
    monkeypatch.setattr(type(smol_torch.model), "cache_layout", "an older layout")
    assert TorchEngine(smol_torch.model).identity != before
    monkeypatch.setenv("AUTOCOMPLETE_CACHE_DIR", str(tmp_path))
    ids = [1, 2, 3]
    on = {engine: prompt_path(models.load(str(tiny_dir), "cpu", engine=engine), ids) for engine in ("onnx", "torch")}
    assert on["onnx"] != on["torch"]


def prompt_path(lm, ids):
    from autocomplete.text import prompt

    return prompt._stored_path(lm, ids)


def test_a_second_process_loads_the_stored_frame(cli, tiny_dir, tmp_path, env):
    examples = tmp_path / "examples.txt"
    examples.write_text("\n".join(EXAMPLES) + "\n")
    args = ("-m", str(tiny_dir), "--style", "query", "--examples", str(examples), "-t", "0", "--json", "seoul")
    first = cli(*args)
    (stored,) = (tmp_path / "cache" / "frames").iterdir()
    written, long_ago = stored.stat().st_ino, time.time() - 10 * 86400
    os.utime(stored, (long_ago, long_ago))
    second = cli(*args)
    assert stored.stat().st_ino == written  # read, not written again (a write renames a new file in)…
    assert stored.stat().st_mtime > long_ago + 86400  # …and marked used, so pruning keeps it
    assert json.loads(first.stdout)["tokens"] == json.loads(second.stdout)["tokens"]


def test_only_the_last_used_frames_stay_in_memory(tiny, tmp_path, monkeypatch):
    """A warm server is sent examples lists with its requests: it keeps the last few frames, not every one."""
    from autocomplete.text import prompt

    monkeypatch.setenv("AUTOCOMPLETE_CACHE_DIR", str(tmp_path))
    lists = [[f"list {i} query"] for i in range(prompt.FRAMES_KEPT + 3)]
    first = frame_for(tiny, lists[0])
    for examples in lists[1:]:
        frame_for(tiny, examples)
        assert frame_for(tiny, lists[0]) is first  # used every time: never dropped
    assert len(kept(tiny).frames) == prompt.FRAMES_KEPT
    assert tuple(lists[1]) not in kept(tiny).frames and tuple(lists[-1]) in kept(tiny).frames


@pytest.mark.parametrize("examples", [["zebra quilt " * 40], ["zebra quilt " * 40, "amber kettle"]])
def test_a_line_too_long_for_the_frame_keeps_its_end(tiny, tmp_path, monkeypatch, examples):
    monkeypatch.setenv("AUTOCOMPLETE_CACHE_DIR", str(tmp_path))
    whole = tiny.encode(examples[0] + "\n")
    assert len(whole) > tiny.context_length  # more than the whole window, not only half
    frame = frame_for(tiny, examples)
    assert frame.ids + [frame.last] == whole[-(tiny.context_length // 2):]  # its end, the line break last
    assert frame.cache.length == len(frame.ids)
    read = prepare(tiny, "san", "query", examples, 24, quiet=True)
    assert len(frame.ids) + len(read.ids) + read.max_new <= tiny.context_length
    assert complete(tiny, "san", Params(temperature=0, max_tokens=3, style="query", examples=examples),
                    lambda piece: None)


def test_a_new_stored_frame_prunes_the_least_used(tiny, tmp_path, monkeypatch):
    from autocomplete.text import prompt

    monkeypatch.setenv("AUTOCOMPLETE_CACHE_DIR", str(tmp_path))
    stored = tmp_path / "frames"
    stored.mkdir()
    for i in range(prompt._STORED_KEPT + 2):  # older frames, the first the least recently used
        (stored / f"{i:032x}.safetensors").write_bytes(b"")
        os.utime(stored / f"{i:032x}.safetensors", (time.time() - 1000 + i, time.time() - 1000 + i))
    examples = ["pruned frame test"]
    frame_for(tiny, examples)
    left = sorted(p.name for p in stored.iterdir())
    new = prompt._stored_path(tiny, tiny.encode("pruned frame test\n")).name
    assert len(left) == prompt._STORED_KEPT and new in left
    assert left[0] == f"{3:032x}.safetensors"  # the three least used went


def test_examples_from_a_pipe_are_read_up_to_the_bound(tmp_path):
    """A FIFO or <(…) has no size to stat(): the read itself stops at the bound, and says so in one usage error."""
    import os
    import threading

    fifo = tmp_path / "examples.fifo"
    os.mkfifo(fifo)

    def feed(data: bytes) -> None:
        with open(fifo, "wb") as f:
            try:
                f.write(data)
            except BrokenPipeError:  # the reader stopped at its bound
                pass

    writer = threading.Thread(target=feed, args=(b"cheap flights\n" * 400_000,))  # ~5.6 MB
    writer.start()
    with pytest.raises(UsageError, match="too large"):
        frames.read_examples(str(fifo))
    writer.join(timeout=30)
    writer = threading.Thread(target=feed, args=(b"cheap flights\nweather\n",))
    writer.start()
    assert frames.read_examples(str(fifo)) == ["cheap flights", "weather"]
    writer.join(timeout=30)
