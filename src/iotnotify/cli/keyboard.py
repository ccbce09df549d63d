"""A one-line editor on the terminal for `tail --send`: keys are read in cbreak mode (Ctrl-C still
interrupts), the line being typed is shown by the live view, Enter hands the line over."""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any


class LineEditor:
    """Reads keys from a terminal in a background thread; finished lines go to `lines`."""

    def __init__(self, on_change: Callable[[str], None], fd: int | None = None) -> None:
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.on_change = on_change
        self.lines: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._buffer = bytearray()
        self._saved: list[Any] | None = None  # termios attributes
        self._thread = threading.Thread(target=self._run, name="keyboard", daemon=True)

    def __enter__(self) -> LineEditor:
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)  # no echo, no line buffering; signals (Ctrl-C) still work
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        import termios

        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    def text(self) -> str:
        """The line typed so far, for display."""
        return self._buffer.decode("utf-8", "replace")

    def _run(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 1024)
            except OSError:
                return
            if not data:
                return
            for byte in data:
                self._key(byte)
            self.on_change(self.text())

    def _key(self, byte: int) -> None:
        if byte in (10, 13):  # Enter
            if self._buffer:
                self.lines.put(bytes(self._buffer))
            self._buffer.clear()
        elif byte in (8, 127):  # Backspace: drop the last character, not just its last byte
            self._buffer[:] = self.text()[:-1].encode("utf-8")
        elif byte == 21:  # Ctrl-U
            self._buffer.clear()
        elif byte >= 32 or byte == 9:
            self._buffer.append(byte)
