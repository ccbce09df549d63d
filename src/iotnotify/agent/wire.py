"""The frames between `send` and the agent: a kind byte, a 4-byte big-endian length, the body.

send -> agent: HEADER (JSON: the settings' identity, topic, QoS, retain, properties, timeout,
whether the input was read whole), MESSAGE (the payload) per message, in input order, END;
or STATUS, or STOP. agent -> send: READY (the header was checked: go on) or VERDICT, ACKED (4-byte
positions the broker acknowledged), REJECTED (JSON: a message refused before sending), VERDICT
(JSON: how the send ended, as `send` would have raised it), and STATUS's answer as a VERDICT.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False  # typing costs a send through an agent 10 ms: agent/__init__.py
if TYPE_CHECKING:
    import socket
    from typing import Any

HEADER, MESSAGE, END, STATUS, STOP = b"H", b"M", b"E", b"S", b"Q"
READY, ACKED, REJECTED, VERDICT = b"O", b"A", b"X", b"V"
VERSION = 1


def frame(kind: bytes, body: bytes = b"") -> bytes:
    """One frame."""
    return kind + len(body).to_bytes(4, "big") + body


def json_frame(kind: bytes, value: Any) -> bytes:
    """A frame whose body is JSON."""
    return frame(kind, json.dumps(value).encode())


def message_frame(payload: bytes) -> bytes:
    """A MESSAGE frame (the agent numbers them from 1, as `send` numbers its input)."""
    return MESSAGE + len(payload).to_bytes(4, "big") + payload


class Reader:
    """Frames from a socket, read through a buffer; `next()` is None at the end of the stream."""

    def __init__(self, sock: socket.socket) -> None:
        self.stream = sock.makefile("rb")

    def next(self) -> tuple[bytes, bytes] | None:
        """The next frame as (kind, body); None once the other side closed (a frame cut short too)."""
        head = self.stream.read(5)
        if len(head) < 5:
            return None
        size = int.from_bytes(head[1:], "big")
        body = self.stream.read(size) if size else b""
        if len(body) < size:
            return None
        return head[:1], body

    def close(self) -> None:
        self.stream.close()
