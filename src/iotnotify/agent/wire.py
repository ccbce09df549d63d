"""The frames between `send` and the agent: a kind byte, a 4-byte big-endian length, the body.

send -> agent: HEADER (the settings' identity, topic, QoS, retain, properties, timeout, whether
the input was read whole), MESSAGE (the payload) per message, in input order, END; or STATUS, or
STOP. agent -> send: READY (the header was checked: go on) or VERDICT, ACKED (4-byte positions
the broker acknowledged), REJECTED (a message refused before sending), VERDICT (how the send
ended, as `send` would have raised it), and STATUS's answer as a VERDICT.

Structured bodies are `marshal`ed dicts of plain values: marshal is built in, where json would
import `re` (a good part of a send through the agent on a small machine). Only this user's processes
reach the socket (agent/__init__.py), and both ends are this iotnotify; marshal's format 4 is read
by every Python 3.
"""

from __future__ import annotations

import marshal

TYPE_CHECKING = False  # not typing: too dear for the quick paths (bench/README.md, "Cold send")
if TYPE_CHECKING:
    from typing import Any, Protocol

    from iotnotify.outgoing import Outgoing

    class Receiver(Protocol):
        """A socket: socket.socket, or _socket.socket (which the quick client uses)."""

        def recv(self, size: int, /) -> bytes: ...

        def settimeout(self, value: float | None, /) -> None: ...

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


def header(identity: str, outgoing: Outgoing) -> dict[str, Any]:
    """A send's HEADER: the agent identity it is for, and the request but its messages (which follow
    as MESSAGE frames) and its --failed file (the sender's own)."""
    return {"v": VERSION, "identity": identity, "topic": outgoing.topic, "qos": outgoing.qos,
            "retain": outgoing.retain, "timeout": outgoing.timeout, "records": outgoing.records,
            "properties": outgoing.properties.record() if outgoing.properties else None, "whole": outgoing.whole,
            "ids": outgoing.ids}


SIZED = {ord(c): 4 for c in "stuaA"} | {ord(c): 1 for c in "zZ"}  # marshal's strings: the size's bytes
FIXED = {ord("i"): 4, ord("g"): 8, ord("y"): 16, ord("r"): 4} | {ord(c): 0 for c in "NFTS."}
COUNTED = {ord("("): 4, ord("["): 4, ord("<"): 4, ord(">"): 4, ord(")"): 1}  # containers: the count's bytes


def _bounded(body: bytes) -> None:
    """ValueError unless `body` is marshal data of plain values whose every size and count fits in
    what is left of it: marshal.loads believes them, and a 5-byte `(` claiming 2**31 items would
    make it allocate 16 GiB. Code objects and other types are refused."""
    position, pending = 0, [1]  # values still to read at each level (-1: a dict's, until its "0")
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        if position >= len(body):
            raise ValueError("not a frame's value: cut short")
        code = body[position] & 0x7F  # without FLAG_REF
        if code == ord("0") and pending[-1] == -1:  # the end of a dict
            pending.pop()
            position += 1
            continue
        if pending[-1] > 0:
            pending[-1] -= 1
        position, opened = _one(body, position + 1, code)
        if opened is not None:
            pending.append(opened)


def _one(body: bytes, position: int, code: int) -> tuple[int, int | None]:
    """After the type byte `code` at `position`: where the next value starts, and the number of
    values a container holds (-1: a dict's), None for a value that is no container."""
    if code in FIXED:
        return position + FIXED[code], None
    if code == ord("{"):
        return position, -1
    if code not in SIZED and code not in COUNTED and code != ord("l"):
        raise ValueError(f"not a frame's value: marshal type {chr(code)!r}")
    width = SIZED.get(code) or COUNTED.get(code) or 4
    size = int.from_bytes(body[position:position + width], "little", signed=width == 4)
    position += width
    if code == ord("l"):
        size = 2 * abs(size)  # digits of 15 bits, two bytes each
    if not 0 <= size <= len(body) - position:
        raise ValueError("not a frame's value: a size larger than the frame")
    return (position, size) if code in COUNTED else (position + size, None)


def value(body: bytes) -> dict[str, Any]:
    """The dict a value_frame holds; ValueError if it holds none."""
    _bounded(body)
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


MAX_VALUE = 1 << 20  # bytes of a structured frame's body (a HEADER, a VERDICT...)
CHUNK = 1 << 16


class FrameError(ValueError):
    """A frame that breaks the protocol: a structured body over MAX_VALUE bytes."""


class Reader:
    """Frames from a socket, read in chunks; `next()` is None at the end of the stream.

    What a frame's header claims is not trusted (the agent's reader): a MESSAGE body over
    `max_message` bytes is read through but only its first `max_message` + 1 bytes kept (`cut`
    says its real size: the message is refused as over the broker's limit), any other body over
    MAX_VALUE ends the stream (FrameError); and once a frame has begun, the rest of it must come
    within `frame_timeout` seconds of each read (TimeoutError), while between frames there is no
    limit (a stream's lines may come slowly)."""

    def __init__(self, sock: Receiver, max_message: int | None = None, frame_timeout: float | None = None) -> None:
        self.sock = sock
        self.recv = sock.recv
        self.buffer = bytearray()
        self.max_message = max_message
        self.frame_timeout = frame_timeout
        self.cut: int | None = None  # the real size of the last MESSAGE body, when over max_message
        self.idle_timeout: float | None = None  # with frame_timeout: the limit between frames (None: none)

    def _fill(self, size: int, begun: bool = False) -> bool:
        """At least `size` bytes in the buffer; False if the stream ended first. Within a frame
        (`begun`, or bytes of it in the buffer) each read has `frame_timeout`."""
        while len(self.buffer) < size:
            if self.frame_timeout is not None:
                self.sock.settimeout(self.frame_timeout if begun or self.buffer else self.idle_timeout)
            chunk = self.recv(CHUNK)
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def next(self) -> tuple[bytes, bytes] | None:
        """The next frame as (kind, body); None once the other side closed (a frame cut short too)."""
        if not self._fill(5):
            return None
        kind, size = bytes(self.buffer[:1]), int.from_bytes(self.buffer[1:5], "big")
        self.cut = None
        if self.max_message is not None and kind != MESSAGE and size > MAX_VALUE:
            raise FrameError(f"a frame of {size} bytes, over {MAX_VALUE}")
        if self.max_message is not None and kind == MESSAGE and size > self.max_message + 1:
            return self._cut(kind, size)
        if not self._fill(5 + size, begun=True):
            return None
        body = bytes(self.buffer[5:5 + size])
        del self.buffer[:5 + size]
        return kind, body

    def _cut(self, kind: bytes, size: int) -> tuple[bytes, bytes] | None:
        """A MESSAGE over max_message: its first bytes kept, the rest read and dropped."""
        assert self.max_message is not None  # noqa: S101 - next() checked
        keep = self.max_message + 1
        if not self._fill(5 + keep, begun=True):
            return None
        body = bytes(self.buffer[5:5 + keep])
        left = size - keep
        del self.buffer[:5 + keep]
        while left > 0:
            if not self.buffer and not self._fill(1, begun=True):
                return None
            dropped = min(left, len(self.buffer))
            del self.buffer[:dropped]
            left -= dropped
        self.cut = size
        return kind, body
