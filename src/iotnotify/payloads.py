"""What a `send` (or a `request`) reads as its messages: the argument, a file, all of stdin, or
stdin's lines one at a time. It imports nothing: the quick path (quick/) reads with it too."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing: too dear for the quick paths (bench/README.md, "Cold send")
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import BinaryIO


def payloads_from(message: str | None, file: BinaryIO | None, whole_stdin: bool, lines: bool,
                  stdin: BinaryIO) -> list[bytes] | Iterator[bytes]:
    """The payloads to send from exactly one source: the argument (`-` means stdin), a file, all
    of stdin, or stdin's lines (an iterator, so that each line goes out as soon as it is read)."""
    if message == "-":
        message, whole_stdin = None, True
    chosen = [name for name, given in (("MESSAGE", message is not None), ("-f", file is not None),
                                       ("-s", whole_stdin), ("-l", lines)) if given]
    if len(chosen) != 1:
        from iotnotify.errors import UsageError

        raise UsageError("give exactly one of MESSAGE, -m, -f FILE, -s or -l"
                         + (f" (got {', '.join(chosen)})" if chosen else ""))
    if message is not None:
        return [os.fsencode(message)]  # argv bytes that are not UTF-8 stay as they were
    if file is not None:
        return [file.read()]
    if whole_stdin:
        return [stdin.read()]
    return read_lines(stdin)


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


def repeated(payload: bytes, count: int, interval: float) -> Iterator[bytes]:
    """`payload` `count` times (0: until interrupted), one every `interval` seconds on a fixed
    schedule (a late one does not push the next back), the first at once: a heartbeat."""
    import itertools
    import time

    start = time.monotonic()
    for number in itertools.count() if count == 0 else range(count):
        delay = start + number * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield payload
