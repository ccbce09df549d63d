"""The wss front's connection to Mosquitto (local/broker_link.py): under a flood it reads in
batches, a read every HOLD instead of every few tens of microseconds; isolated messages and
request/answer traffic are read at once; the client's back-pressure and the flood's hold add up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from iotnotify.local import broker_link
from iotnotify.local.broker_link import BrokerLink


class Clock:
    """The loop's time and timers, moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[tuple[float, Callable[..., object], tuple[object, ...]]] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[..., object], *args: object) -> None:
        self.timers.append((self.now + delay, callback, args))

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [timer for timer in self.timers if timer[0] <= self.now]
        self.timers = [timer for timer in self.timers if timer[0] > self.now]
        for _, callback, args in due:
            callback(*args)


class Transport:
    """What BrokerLink asks of its transport: reading paused or not."""

    def __init__(self) -> None:
        self.reading = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


def link_on(clock: Clock) -> tuple[BrokerLink, Transport, list[bytes]]:
    async def make() -> BrokerLink:
        return BrokerLink(received.append)

    received: list[bytes] = []
    link = asyncio.run(make())
    link._loop = clock  # type: ignore[assignment]  # time and timers by hand
    transport = Transport()
    link.connection_made(transport)  # type: ignore[arg-type]
    return link, transport, received


def read(link: BrokerLink, data: bytes) -> None:
    """What the event loop does when the socket has `data`."""
    buffer = link.get_buffer(-1)
    buffer[:len(data)] = data
    link.buffer_updated(len(data))


def test_a_flood_is_read_in_batches():
    clock = Clock()
    link, transport, received = link_on(clock)
    for n in range(broker_link.FLOOD_READS + 1):  # a read every 30 us: the broker writes faster than we read
        assert transport.reading, n
        read(link, b"m%d" % n)
        clock.advance(0.00003)
    assert not transport.reading  # held: what arrives meanwhile is read at once, later
    assert received == [b"m%d" % n for n in range(broker_link.FLOOD_READS + 1)]  # nothing held back
    clock.advance(broker_link.HOLD)
    assert transport.reading


@pytest.mark.parametrize("gap", [0.0003, 0.001, 0.5])
def test_isolated_messages_and_request_answer_traffic_are_never_held(gap):
    clock = Clock()
    link, transport, received = link_on(clock)
    for n in range(50):  # one message at a time, a round trip (0.3 ms and more) apart
        read(link, b"m%d" % n)
        assert transport.reading, n
        clock.advance(gap)
    assert len(received) == 50


def test_the_client_side_being_full_outlasts_the_flood_hold():
    clock = Clock()
    link, transport, _ = link_on(clock)
    link.hold("client")  # the WebSocket side's buffer is full
    for _ in range(broker_link.FLOOD_READS + 1):
        read(link, b"x")
        clock.advance(0.00003)
    clock.advance(broker_link.HOLD)  # the flood's hold ends...
    assert not transport.reading  # ...the client's has not
    link.release("client")
    assert transport.reading


def test_received_bytes_are_copies_not_the_reused_buffer():
    link, _, received = link_on(Clock())
    read(link, b"first")
    read(link, b"2nd")
    assert received == [b"first", b"2nd"] and all(type(data) is bytes for data in received)


def test_a_link_whose_connection_ended_lets_go_of_its_relay():
    """The relay's callback holds the relay, its WebSocket and that connection's TLS buffers: kept
    by the link after the end, they formed a cycle that only a full collection freed (the local
    stack's RSS grew some 2 MB a minute in a soak until it was broken)."""
    import weakref

    class Relay:
        def received(self, data: bytes) -> None:
            pass

    relay = Relay()
    gone = weakref.ref(relay)

    async def make(callback: Callable[[bytes], None]) -> BrokerLink:
        return BrokerLink(callback)

    link = asyncio.run(make(relay.received))
    link.connection_made(Transport())  # type: ignore[arg-type]
    link.connection_lost(None)
    del relay
    assert gone() is None  # freed by its reference count, not left for the cycle collector
    read(link, b"late bytes")  # (and bytes after the end go nowhere)
