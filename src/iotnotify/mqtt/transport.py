"""What a session (session.py) and its transports (v5.py, v311.py, https.py) agree on: the
Transport each is, and the States a session goes through, which OnState hears."""

from __future__ import annotations

import enum
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from iotnotify.mqtt.outcome import OnDone

if TYPE_CHECKING:
    from iotnotify.mqtt.session import Session
    from iotnotify.properties import Properties


class State(enum.StrEnum):
    """Where a session is; OnState hears each change, with the reconnection attempt's number."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"  # disconnect() was called
    FAILED = "failed"  # the broker ended it for good (Session.fatal says why)


OnState = Callable[[State, int], None]
Answer = Callable[[float], list[int]]
"""A SUBSCRIBE's answer, waited for up to the seconds given: the SUBACK's code for each filter;
TimeoutError while none came, DeliveryError if the SUBSCRIBE failed (its client stopped, say)."""


class Transport(Protocol):
    """What moves the packets of a session: made for one client id, started, stopped, never reused."""

    scheme: str  # "wss" or "https": which proxy applies
    has_client_id: bool  # False (HTTPS): any keys do, no renewal under a new id
    paced: bool  # AWS IoT Core's per-connection publish rate applies
    start_blocks: bool  # start(persist=True) blocks until connected (a client that does not reconnect by itself)
    steady: bool  # its client can be told to try each interval, and start() attempts at once (retry.py)

    def __init__(self, session: Session) -> None:
        """A transport for `session`'s keys, options and client id (not connecting yet)."""

    def start(self, persist: bool = False) -> None:
        """Begin connecting (the session hears how it went). With `persist` (a renewal), go on until
        connected; a transport whose client does not reconnect by itself (MQTT 3.1.1) blocks until
        then, or until the session closes or replaces it."""

    def subscribe(self, filters: list[str], qos: int) -> Answer:
        """Send a SUBSCRIBE; its Answer."""

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, on_done: OnDone,
                properties: Properties | None) -> None:
        """Hand a message over; `on_done` gets its Outcome, from awscrt's thread."""

    def halt(self) -> None:
        """Stop at once, from any thread (a callback's too), waiting for nothing."""

    def stop(self, timeout: float) -> None:
        """DISCONNECT and stop, waiting up to `timeout` seconds."""


def guarded(handler: Callable[..., None]) -> Callable[..., None]:
    """`handler`, a method of a transport's, called only while that transport is its session's
    (see Session._replace). The callback holds nothing but a weak reference to the transport:
    awscrt's native client holds its callbacks until it is freed, which a reference from them back
    to the transport (or its session) would never let happen: a replaced transport leaked 1.1 MB."""
    method: Callable[..., None] = handler.__func__  # type: ignore[attr-defined]
    transport = weakref.ref(handler.__self__)  # type: ignore[attr-defined]

    def call(*args: Any, **kwargs: Any) -> None:
        this: Any = transport()
        if this is not None and this.session.current(this):
            method(this, *args, **kwargs)

    return call
