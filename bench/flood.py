"""The subscribe rows' flood: messages written to Mosquitto's plain listener as one stream of MQTT
PUBLISH packets (QoS 0), encoded before the run, so that the publisher costs next to nothing on
the cores the subscriber and the broker share.

`mosquitto_pub -l`, the flood before (bench/README.md, Round two, 11), spent 1.6-2.2 us of CPU a
message (a line read, a wake-up of its network thread through a socket pair, a `write` each): a
fifth of a core at the rates measured, taken from whichever client was measured. A real
subscriber does not share its machine with the publishers.
"""

from __future__ import annotations

import socket
import threading

CONNECT, CONNACK, PUBLISH, DISCONNECT = 0x10, 0x20, 0x30, 0xE0


def _remaining_length(n: int) -> bytes:
    """MQTT's variable-length integer (3.1.1, 2.2.3)."""
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def _packet(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + _remaining_length(len(body)) + body


def encode(topic: str, payloads: list[bytes]) -> bytes:
    """Each payload as a QoS 0 PUBLISH on `topic`, one after another."""
    head = _string(topic.encode())
    return b"".join(_packet(PUBLISH, head + payload) for payload in payloads)


class Flood(threading.Thread):
    """Connects to the broker on 127.0.0.1:port (MQTT 3.1.1, anonymous), writes `stream` as fast
    as the broker reads it, and disconnects; `join()` then `check()` raises what went wrong."""

    def __init__(self, port: int, stream: bytes) -> None:
        super().__init__(name="flood", daemon=True)
        self.port, self.stream = port, stream
        self.error: OSError | None = None

    def run(self) -> None:
        try:
            self._flood()
        except OSError as e:
            self.error = e

    def _flood(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            connect = _string(b"MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big") + _string(b"bench-flood")
            sock.sendall(_packet(CONNECT, connect))
            ack = sock.recv(4)
            if len(ack) < 4 or ack[0] != CONNACK or ack[3] != 0:
                raise ConnectionRefusedError(f"the broker refused the flood's connection: {ack!r}")
            sock.sendall(self.stream)
            sock.sendall(_packet(DISCONNECT, b""))
            sock.recv(1)  # the broker closes once it has read everything before DISCONNECT

    def check(self) -> None:
        if self.is_alive():
            raise RuntimeError("the flood did not finish: the broker stopped reading it")
        if self.error is not None:
            raise RuntimeError(f"the flood failed: {self.error}") from self.error
