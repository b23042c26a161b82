"""Drive a command on a pseudo-terminal, as a person at a keyboard would: send keys, wait for text."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import subprocess
import termios
import time


def _take_terminal() -> None:
    """In the child: a session of its own with the pty as controlling terminal, so Ctrl-C sends SIGINT."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtySession:
    def __init__(self, args: list[str], env: dict):
        self.leader, follower = pty.openpty()
        self.proc = subprocess.Popen(args, stdin=follower, stdout=follower, stderr=follower, env=env,
                                     preexec_fn=_take_terminal)
        os.close(follower)
        self.screen = ""  # everything shown so far, escape codes removed
        self.cursor_asks = 0  # prompt_toolkit asks where the cursor is once its prompt is up and reading keys
        self.asks_before_prompt = 0

    def send(self, keys: str) -> None:
        if "\r" in keys or "\x03" in keys:  # Enter or Ctrl-C: the next prompt is the next to ask for the cursor
            self.asks_before_prompt = self.cursor_asks
        os.write(self.leader, keys.encode())

    def expect(self, text: str, timeout: float = 120) -> None:
        """Wait until `text` has been shown since the last expect."""
        start = len(self.screen) if not hasattr(self, "_mark") else self._mark
        deadline = time.monotonic() + timeout
        while text not in self.screen[start:]:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {text!r}; screen:\n{self.screen[-2000:]}")
            self._read(0.2)
        self._mark = start + self.screen[start:].index(text) + len(text)

    def _read(self, wait: float) -> None:
        ready, _, _ = select.select([self.leader], [], [], wait)
        if not ready:
            return
        try:
            data = os.read(self.leader, 65536)
        except OSError:
            return
        if b"\x1b[6n" in data:  # prompt_toolkit asks where the cursor is: answer like a terminal would
            self.cursor_asks += data.count(b"\x1b[6n")
            self.send("\x1b[1;1R")
        self.screen += re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]|\r", "", data.decode(errors="replace"))

    def reading(self, asks: int, timeout: float = 120) -> None:
        """Wait until a prompt asked where the cursor is more than `asks` times: a new prompt is up, its terminal
        in raw mode. Keys sent before that reach a terminal in cooked mode, whose line discipline eats a Ctrl-D."""
        deadline = time.monotonic() + timeout
        while self.cursor_asks <= asks:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for a prompt; screen:\n{self.screen[-2000:]}")
            self._read(0.2)

    def leave(self, timeout: float = 60) -> int:
        """Ctrl-D once the prompt after the last Enter (or Ctrl-C) is reading keys; the exit status. (A ">" on the
        screen may be the old prompt redrawn; sent before the new one is up, Ctrl-D reaches a terminal in cooked
        mode, whose line discipline eats it.)"""
        self.reading(self.asks_before_prompt)
        self.send("\x04")
        return self.wait(timeout)

    def wait(self, timeout: float = 60, check: bool = True) -> int | None:
        """The exit status, reading the screen meanwhile; still running after `timeout`: an error, or with
        check=False, None."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        if not check:
            return self.proc.poll()
        return self.proc.wait(timeout=1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.leader)
