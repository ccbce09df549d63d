"""Input one line at a time, as `send -l` reads it; importing nothing (a send through the agent
reads its lines with it too, agent/quick.py)."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing: too dear for the quick paths (bench/README.md, "Cold send")
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import BinaryIO


def read_lines(stream: BinaryIO) -> Iterator[bytes]:
    """Yield each line of `stream` without its line ending, as soon as the line is complete."""
    readline = stream.readline
    while True:
        line = readline()
        if not line:
            return
        if line.endswith(b"\n"):
            line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        yield line
