"""The wss front's connections to Mosquitto: over its Unix socket, or TCP on 127.0.0.1; the
broker's bytes handed on as they are read, in batches under a flood. And the stack's own short
exchanges with it (an HTTPS publish handed on, a stored session forgotten)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from iotnotify.local import packets as mqtt

BrokerAddress = int | Path
"""Mosquitto's TCP port on 127.0.0.1, or the path of its Unix socket."""

READ_SIZE = 64 * 1024  # bytes read from the broker at a time, into one buffer reused
QUICK = 0.0002  # s between two reads from the broker that make them a flood's, when FLOOD_READS in a row
FLOOD_READS = 3
HOLD = 0.001  # s without reading from the broker after a flood's FLOOD_READS reads


async def connect_broker(broker: BrokerAddress, received: Callable[[bytes], None]) -> BrokerLink:
    """A new connection to the broker whose bytes go to `received`; OSError if it refuses."""
    loop = asyncio.get_running_loop()
    if isinstance(broker, Path):
        _, link = await loop.create_unix_connection(lambda: BrokerLink(received), str(broker))
    else:
        _, link = await loop.create_connection(lambda: BrokerLink(received), "127.0.0.1", broker)
    return link


async def open_stream(broker: BrokerAddress) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A stream connection of the stack's own to the broker (OSError if it cannot be made)."""
    if isinstance(broker, Path):
        return await asyncio.open_unix_connection(str(broker))
    return await asyncio.open_connection("127.0.0.1", broker)


async def exchange(broker: BrokerAddress, client_id: str, then: bytes = b"", expected: tuple[int, ...] = ()) -> None:
    """Connect to the broker as `client_id` (MQTT 3.1.1, a clean session: a session stored for that
    id is forgotten), send `then`, wait for a packet of each kind `expected`, and disconnect.
    OSError if the broker cannot be reached, Malformed if it refuses or closes first."""
    reader, writer = await open_stream(broker)
    try:
        writer.write(mqtt.connect(client_id) + then)
        framer, waiting = mqtt.Framer(), [mqtt.CONNACK, *expected]
        while waiting:
            data = await reader.read(4096)
            if not data:
                raise mqtt.Malformed("the broker closed the connection")
            for packet in framer.feed(data):
                if packet.kind == mqtt.CONNACK and mqtt.connack_code(packet) != 0:
                    raise mqtt.Malformed("the broker refused the connection")
                if packet.kind in waiting:
                    waiting.remove(packet.kind)
        writer.write(mqtt.DISCONNECT_311)
        await writer.drain()
    finally:
        writer.close()


def _dropped(_data: bytes) -> None:
    """What a link whose connection ended does with bytes: nothing."""


class BrokerLink(asyncio.BufferedProtocol):
    """A relay's connection to Mosquitto. The broker's bytes go to `received` as they arrive,
    read into one buffer (no stream buffer, no task woken per read). Reading stops while `hold`
    has a reason: the client's side is full, or a flood, where a read every few tens of
    microseconds would take a few messages each and the front's cost per read would take the cores
    from the client and the broker; reading then waits HOLD, so that the next read takes what
    arrived meanwhile. Isolated messages and request/answer traffic are read at once.
    `drain` waits while the kernel's buffer towards the broker is full."""

    def __init__(self, received: Callable[[bytes], None]) -> None:
        self.received = received
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self.ended: asyncio.Future[None] = self._loop.create_future()
        self._drained: asyncio.Future[None] | None = None
        self._buffer = memoryview(bytearray(READ_SIZE))
        self._held: set[str] = set()
        self._last_read = 0.0
        self._quick_reads = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a TCP connection's is a Transport

    def hold(self, reason: str) -> None:
        """Stop reading from the broker until `release(reason)` (and every other reason's)."""
        if not self._held and self.transport is not None:
            self.transport.pause_reading()
        self._held.add(reason)

    def release(self, reason: str) -> None:
        self._held.discard(reason)
        if not self._held and self.transport is not None:
            self.transport.resume_reading()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        now = self._loop.time()
        self._quick_reads = self._quick_reads + 1 if now - self._last_read < QUICK else 0
        self._last_read = now
        self.received(self._buffer[:nbytes].tobytes())
        if self._quick_reads >= FLOOD_READS:
            self._quick_reads = 0
            self.hold("flood")
            self._loop.call_later(HOLD, self.release, "flood")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended.done():
            self.ended.set_result(None)
        self.resume_writing()
        self.received = _dropped  # the relay's callback, which holds the relay, its WebSocket and its TLS
        self.transport = None  # buffers (some 300 KB): no cycle keeps them until a full collection

    def pause_writing(self) -> None:
        self._drained = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    async def drain(self) -> None:
        if self._drained is not None:
            await self._drained

    def write(self, data: bytes | bytearray) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
