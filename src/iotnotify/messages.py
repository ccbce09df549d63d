"""Message: one MQTT message received or to send, and turning user input into payloads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO


@dataclass(frozen=True, slots=True)
class Message:
    """A message as received: topic, payload bytes, QoS, retain flag and receive time (epoch s)."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    time: float = field(default_factory=time.time)


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
