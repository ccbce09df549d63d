"""Message: one MQTT message received or to send, and turning user input into payloads."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from iotnotify.errors import UsageError
from iotnotify.lines import read_lines
from iotnotify.properties import Properties


@dataclass(slots=True)
class Message:
    """A message as received: topic, payload bytes, QoS, retain flag, receive time (epoch s) and
    its MQTT 5 properties (None when it has none). Nothing changes one once made; it is not a
    frozen dataclass because that __init__ sets each field through object.__setattr__, four
    times the cost of this one's, on every message received (bench/README.md, "Subscribe")."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    time: float = field(default_factory=time.time)
    properties: Properties | None = None
    ack: Callable[[], None] | None = None  # sends its PUBACK, for a QoS 1 message taken with manual acknowledgement


def payloads_from(message: str | None, file: BinaryIO | None, whole_stdin: bool, lines: bool,
                  stdin: BinaryIO) -> list[bytes] | Iterator[bytes]:
    """The payloads to send from exactly one source: the argument (`-` means stdin), a file, all
    of stdin, or stdin's lines (an iterator, so that each line goes out as soon as it is read)."""
    if message == "-":
        message, whole_stdin = None, True
    chosen = [name for name, given in (("MESSAGE", message is not None), ("-f", file is not None),
                                       ("-s", whole_stdin), ("-l", lines)) if given]
    if len(chosen) != 1:
        raise UsageError("give exactly one of MESSAGE, -m, -f FILE, -s or -l"
                         + (f" (got {', '.join(chosen)})" if chosen else ""))
    if message is not None:
        return [os.fsencode(message)]  # argv bytes that are not UTF-8 stay as they were
    if file is not None:
        return [file.read()]
    if whole_stdin:
        return [stdin.read()]
    return read_lines(stdin)
