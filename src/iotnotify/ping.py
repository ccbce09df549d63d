"""`ping`: a health check of the configured endpoint, for people and monitoring (as `mosquitto_rr
--latency` and `nats rtt`): how long the keys took (cached or fetched), the connection, the
subscription, and N publish -> receive round trips on a topic the keys allow.

Each ping is a message of its own (a sequence number and a random nonce), timed from the
publish to its arrival back: messages of others on the topic, and a ping that comes back late
(after its time ran out), are not counted as answers.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from iotnotify.errors import DeliveryError, UsageError
from iotnotify.inbox import Inbox
from iotnotify.keys import KeySource, TemporaryKeys
from iotnotify.keys.allowance import Allowance
from iotnotify.mqtt import ConnectOptions, Session, State
from iotnotify.send import publish_one
from iotnotify.subscribe import subscribe
from iotnotify.topics import TUTORIAL_TOPIC, check_topic

PING_LEVEL = "iotnotify-ping"  # the topic of its own: PREFIX/iotnotify-ping-RANDOM


@dataclass
class PingReport:
    """What a ping measured: milliseconds for the keys (and whether they were cached), the
    connection and the subscription, and each round trip (None: no answer in time)."""

    host: str
    topic: str
    keys_ms: float = 0.0
    keys_cached: bool = False
    connect_ms: float = 0.0
    subscribe_ms: float = 0.0
    round_trips: list[float | None] = field(default_factory=list)

    @property
    def answered(self) -> list[float]:
        return [ms for ms in self.round_trips if ms is not None]

    def summary(self) -> dict[str, float]:
        """min, p50, p99 and max of the round trips answered (nearest rank), in ms; {} if none."""
        times = sorted(self.answered)
        if not times:
            return {}
        return {"min": times[0], "p50": percentile(times, 50), "p99": percentile(times, 99), "max": times[-1]}

    def record(self) -> dict[str, object]:
        """The report as `ping --json` prints it."""
        return {"host": self.host, "topic": self.topic, "keys_ms": round(self.keys_ms, 3),
                "keys_cached": self.keys_cached, "connect_ms": round(self.connect_ms, 3),
                "subscribe_ms": round(self.subscribe_ms, 3),
                "round_trips_ms": [None if ms is None else round(ms, 3) for ms in self.round_trips],
                "sent": len(self.round_trips), "received": len(self.answered),
                **{f"{name}_ms": round(ms, 3) for name, ms in self.summary().items()}}


def percentile(ordered: list[float], p: float) -> float:
    """The nearest-rank `p`th percentile of `ordered` (ascending, not empty)."""
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


def ping_topic(keys: TemporaryKeys, given: str | None) -> str:
    """Where to ping: the topic given (--topic); else a topic of its own, under a `PREFIX/*` the keys
    allow, or anywhere on a broker without AWS's rules; else (keys that name only exact topics, or
    none under AWS's rules: the tutorial's policy) the first they allow, or the tutorial's.
    UsageError for a given topic the keys do not allow both to publish and to subscribe to."""
    allowance = Allowance.of(keys)
    own = f"{PING_LEVEL}-{os.urandom(4).hex()}"
    if given is not None:
        check_topic(given, keys.aws_rules)
        if allowance is not None and not (allowance.may_publish(given) and allowance.may_subscribe(given)):
            raise UsageError(f"--topic {given}: ping publishes to it and subscribes to it, and "
                             f"{allowance.describe()}")
        return given
    if not keys.aws_rules:
        return f"{PING_LEVEL}/{own}"
    if allowance is None:
        return TUTORIAL_TOPIC
    for allowed in allowance.topics:
        if allowed.endswith("/*"):
            return f"{allowed[:-2]}/{own}"
    if allowance.topics:
        return allowance.topics[0]
    raise UsageError(f"no topic to ping on: {allowance.describe()}")


def ping(source: KeySource, options: ConnectOptions, topic: str | None, count: int, interval: float,
         timeout: float, qos: int = 1, on_ready: Callable[[PingReport], None] | None = None,
         on_round_trip: Callable[[int, float | None], None] | None = None,
         clock: Callable[[], float] = time.perf_counter) -> PingReport:
    """Measure the keys, the connection, the subscription (`on_ready` hears the report then), and
    `count` round trips at `qos`, `interval` seconds apart, each waited for `timeout` seconds;
    `on_round_trip` hears each (its number, ms or None) as it ends."""
    fetches, started = source.fetches, clock()
    keys = source.get()
    keys_ms = (clock() - started) * 1000
    report = PingReport(f"{keys.host}:{keys.port}", ping_topic(keys, topic), keys_ms,
                        keys_cached=source.fetches == fetches)
    connected: list[float] = []

    def state(now: State, _attempt: int) -> None:
        if now == State.CONNECTED and not connected:
            connected.append(clock())

    started = clock()
    connection, inbox = subscribe(source, options, [report.topic], qos, on_state=state)
    subscribed = clock()
    report.connect_ms = ((connected[0] if connected else subscribed) - started) * 1000
    report.subscribe_ms = (subscribed - (connected[0] if connected else subscribed)) * 1000
    nonce = os.urandom(6).hex()
    with connection:
        try:
            if on_ready is not None:
                on_ready(report)
            for number in range(1, count + 1):
                if number > 1:
                    time.sleep(interval)
                report.round_trips.append(_round_trip(connection, inbox, report.topic, f"ping {number} {nonce}",
                                                      qos, timeout))
                if on_round_trip is not None:
                    on_round_trip(number, report.round_trips[-1])
        finally:
            inbox.stop()
    return report


def _round_trip(connection: Session, inbox: Inbox, topic: str, text: str, qos: int, timeout: float) -> float | None:
    """Publish `text` and wait for it to come back: ms from the publish to its arrival (the time the
    MQTT thread received it, not when this thread read it), or None after `timeout` seconds, or if
    the broker did not acknowledge it (lost). Refused if the broker refuses it."""
    payload = text.encode()
    started = time.time()  # Message.time is the wall clock's too
    try:
        publish_one(connection, topic, payload, qos, None, timeout=timeout)
    except DeliveryError:
        return None
    left = timeout - (time.time() - started)
    if left > 0:
        for message in inbox.messages(left):
            if message.payload == payload:
                return max(message.time - started, 0.0) * 1000
    return None
