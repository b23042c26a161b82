"""Reading prompts from stdin with bounded memory: only the tail of a huge input can reach the model anyway."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, TextIO

from autocomplete import terminal
from autocomplete.settings import MAX_PROMPT_BYTES


_warned = False


def decode(data: bytes, cut: bool = False) -> str:
    """UTF-8 with replacement, and one warning per run when bytes had to be replaced."""
    global _warned
    if cut:  # the tail may start inside a character: drop its continuation bytes
        start = 0
        while start < min(len(data), 3) and 0x80 <= data[start] <= 0xBF:
            start += 1
        data = data[start:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        if not _warned:
            terminal.notice("stdin is not valid UTF-8: bytes that aren't were replaced with \ufffd")
            _warned = True
        return data.decode("utf-8", errors="replace")


def read_all(stream: BinaryIO, limit: int = MAX_PROMPT_BYTES) -> str:
    """All of stdin, or its last `limit` bytes when there is more; the trailing newline dropped."""
    buffer, cut = bytearray(), False
    while chunk := stream.read(1 << 16):
        buffer += chunk
        if len(buffer) > 2 * limit:
            del buffer[: len(buffer) - limit]
            cut = True
    if len(buffer) > limit:
        del buffer[: len(buffer) - limit]
        cut = True
    if cut:
        terminal.notice(f"stdin is over {limit >> 20} MiB: reading its last part only")
    return decode(bytes(buffer), cut).removesuffix("\n").removesuffix("\r")


def iter_lines(stream: BinaryIO, limit: int = MAX_PROMPT_BYTES) -> Iterator[str]:
    """Lines of stdin as they arrive, without their line endings; an overlong line keeps its last `limit` bytes."""
    while line := stream.readline(limit):
        cut = False
        while not line.endswith(b"\n"):
            more = stream.readline(limit)
            if not more:
                break
            line, cut = (line + more)[-limit:], True
        yield decode(line.rstrip(b"\r\n"), cut)


def lines_ahead(stdin: TextIO) -> Iterator[tuple[str, str | None]]:
    """stdin's lines, each with the one after it where that has arrived (with_next). The thread that reads ahead
    reads a stream of its own on the same file: one it could be stuck in when the command ends (Ctrl-C, an error,
    a pipe still open) must not be sys.stdin, which Python closes at exit and would wait on, then abort."""
    import os

    return with_next(iter_lines(os.fdopen(os.dup(stdin.fileno()), "rb")))


def with_next(lines: Iterator[str], wait: float = 0.005) -> Iterator[tuple[str, str | None]]:
    """Each line, and the one after it if that has arrived (within `wait` seconds; None if not, or none comes): a
    thread reads one line ahead, so a line is never kept waiting for the next one's typing."""
    import queue
    import threading

    end = object()
    ahead: queue.Queue = queue.Queue(maxsize=1)

    def read() -> None:
        try:
            for line in lines:
                ahead.put(line)
            ahead.put(end)
        except BaseException as error:  # raised where the lines are used
            ahead.put(error)

    threading.Thread(target=read, name="stdin lines", daemon=True).start()
    line = ahead.get()
    while line is not end:
        if isinstance(line, BaseException):
            raise line
        try:
            following = ahead.get(timeout=wait)
        except queue.Empty:
            yield line, None
            following = ahead.get()
        else:
            yield line, following if isinstance(following, str) else None
        line = following
