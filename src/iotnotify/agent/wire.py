"""The frames between `send` and the agent: a kind byte, a 4-byte big-endian length, the body.

send -> agent: HEADER (the settings' identity, topic, QoS, retain, properties, timeout, whether
the input was read whole), MESSAGE (the payload) per message, in input order, END; or STATUS, or
STOP. agent -> send: READY (the header was checked: go on) or VERDICT, ACKED (4-byte positions
the broker acknowledged), REJECTED (a message refused before sending), VERDICT (how the send
ended, as `send` would have raised it), and STATUS's answer as a VERDICT.

Structured bodies are `marshal`ed dicts of plain values: marshal is built in, where json would
import `re` (10-15 ms of a send through the agent on a small machine). Only this user's processes
reach the socket (agent/__init__.py), and both ends are this iotnotify; marshal's format 4 is read
by every Python 3.
"""

from __future__ import annotations

import marshal

TYPE_CHECKING = False  # typing costs a send through an agent 10 ms: agent/__init__.py
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Receiver(Protocol):
        """A socket: socket.socket, or _socket.socket (which the quick client uses)."""

        def recv(self, size: int, /) -> bytes: ...

HEADER, MESSAGE, END, STATUS, STOP = b"H", b"M", b"E", b"S", b"Q"
READY, ACKED, REJECTED, VERDICT = b"O", b"A", b"X", b"V"
VERSION = 2
MARSHAL_FORMAT = 4


def frame(kind: bytes, body: bytes = b"") -> bytes:
    """One frame."""
    return kind + len(body).to_bytes(4, "big") + body


def value_frame(kind: bytes, value: dict[str, Any]) -> bytes:
    """A frame whose body is a dict of plain values (str, int, float, bool, None, bytes, lists)."""
    return frame(kind, marshal.dumps(value, MARSHAL_FORMAT))


def value(body: bytes) -> dict[str, Any]:
    """The dict a value_frame holds; ValueError if it holds none."""
    try:
        loaded = marshal.loads(body)  # noqa: S302 - from this user's own iotnotify only (module docstring)
    except (EOFError, TypeError) as e:
        raise ValueError(f"not a frame's value: {e}") from None
    if not isinstance(loaded, dict):
        raise ValueError("not a frame's value: not a dict")  # noqa: TRY004 - a bad frame, as a cut-short one
    return loaded


def message_frame(payload: bytes) -> bytes:
    """A MESSAGE frame (the agent numbers them from 1, as `send` numbers its input)."""
    return MESSAGE + len(payload).to_bytes(4, "big") + payload


class Reader:
    """Frames from a socket, read in chunks; `next()` is None at the end of the stream."""

    def __init__(self, sock: Receiver) -> None:
        self.recv = sock.recv
        self.buffer = bytearray()

    def _fill(self, size: int) -> bool:
        while len(self.buffer) < size:
            chunk = self.recv(1 << 16)
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def next(self) -> tuple[bytes, bytes] | None:
        """The next frame as (kind, body); None once the other side closed (a frame cut short too)."""
        if not self._fill(5):
            return None
        size = int.from_bytes(self.buffer[1:5], "big")
        if not self._fill(5 + size):
            return None
        kind, body = bytes(self.buffer[:1]), bytes(self.buffer[5:5 + size])
        del self.buffer[:5 + size]
        return kind, body
