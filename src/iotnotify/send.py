"""Publishing: hand messages to the connection at once and count what the broker acknowledged."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from iotnotify.connection import Connection, ConnectOptions, open_connection
from iotnotify.errors import DeliveryError, Interrupted, UsageError
from iotnotify.files import write_private
from iotnotify.keys import KeySource
from iotnotify.topics import check_payload, check_topic, is_aws_host


@dataclass(frozen=True)
class SendResult:
    """How a send ended: messages handed over, acknowledged, refused by the broker, and refused
    before sending (over a limit); the rest were still waiting."""

    sent: int
    acked: int
    failed: int
    rejected: int = 0

    @property
    def unacknowledged(self) -> int:
        """Messages the broker did not acknowledge: failed or still waiting."""
        return self.sent - self.acked

    def summary(self) -> str:
        """One line: how many of the messages were not delivered, and why."""
        total = self.sent + self.rejected
        parts = [f"{self.unacknowledged} not acknowledged by the broker"]
        if self.rejected:
            parts.append(f"{self.rejected} refused before sending")
        return f"{self.unacknowledged + self.rejected} of {total} messages were not delivered ({', '.join(parts)})"


WINDOW = 1000
"""Messages `send` lets wait for acknowledgement before it stops reading its input: enough to keep
a connection busy (AWS IoT Core and the local broker take 100 QoS 1 messages in flight), few enough
that memory stays flat and the client's I/O thread is not starved of the GIL by a queue of
thousands of callbacks."""


class Publisher:
    """Publishes to one topic without waiting per message; `wait` collects the acknowledgements.
    Every payload is kept until the broker acknowledged it, so what was not delivered can be saved."""

    def __init__(self, connection: Connection, topic: str, qos: int, retain: bool, window: int = WINDOW) -> None:
        self.connection = connection
        self.topic = topic
        self.qos = qos
        self.retain = retain
        self.window = window
        self._low_water = window // 2
        self._waiting_for_room = False
        self._lock = threading.Condition()
        self._sent = 0
        self._acked = 0
        self._failed = 0
        self._pending: dict[int, bytes] = {}  # input position -> payload, until acknowledged
        self._refused: dict[int, bytes] = {}  # input position -> payload the broker refused

    def publish(self, payload: bytes, position: int | None = None) -> None:
        """Check the payload against the broker's limit and hand it to the client; `position` is
        its place in the input (for the order of --failed)."""
        check_payload(len(payload), self.connection.aws)
        with self._lock:
            self._sent += 1
            key = self._sent if position is None else position
            self._pending[key] = payload
        self.connection.publish(self.topic, payload, self.qos, self.retain, lambda ok: self._done(key, ok))

    def _done(self, key: int, ok: bool) -> None:
        with self._lock:
            payload = self._pending.pop(key, b"")
            if ok:
                self._acked += 1
            else:
                self._failed += 1
                self._refused[key] = payload
            if not self._pending or (self._waiting_for_room and len(self._pending) <= self._low_water):
                self._lock.notify_all()  # not once per message: the publishing thread wakes in batches

    def make_room(self, stall: float) -> bool:
        """Wait while `window` messages are unacknowledged, until half of them are; False if no
        acknowledgement came for `stall` seconds meanwhile (the broker is away)."""
        if len(self._pending) < self.window:
            return True
        with self._lock:
            self._waiting_for_room = True
            try:
                while len(self._pending) > self._low_water:
                    done = self._acked + self._failed
                    self._lock.wait(stall)
                    if self._acked + self._failed == done:
                        return False
                return True
            finally:
                self._waiting_for_room = False

    def undelivered(self) -> dict[int, bytes]:
        """The payloads not acknowledged (still waiting, or refused), by input position."""
        with self._lock:
            return {**self._pending, **self._refused}

    def result(self) -> SendResult:
        """The counts so far."""
        with self._lock:
            return SendResult(self._sent, self._acked, self._failed)

    def wait(self, timeout: float) -> SendResult:
        """Wait until every message was acknowledged or failed, or `timeout` seconds passed."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._acked + self._failed < self._sent:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(min(remaining, 0.5))
            return SendResult(self._sent, self._acked, self._failed)


def send(source: KeySource, options: ConnectOptions, topic: str, payloads: Iterable[bytes], qos: int,
         retain: bool, timeout: float, on_rejected: Callable[[int, UsageError], None],
         failed_file: Path | None = None) -> SendResult:
    """Publish every payload as it comes, then wait up to `timeout` s for the acknowledgements.

    A payload over the broker's limit is reported through `on_rejected` and skipped; the rest go out.
    Raises DeliveryError if anything was not delivered, Interrupted on Ctrl-C; either way the
    payloads not delivered are written to `failed_file` (one per line, in input order) if given.
    """
    check_topic(topic, aws=False)  # MQTT's rules before anything goes over the network
    aws = is_aws_host(source.get().host)
    check_topic(topic, aws)
    if isinstance(payloads, (list, tuple)):  # known in advance: refuse before connecting
        for payload in payloads:
            check_payload(len(payload), aws)
    connection = open_connection(source, options)
    publisher = Publisher(connection, topic, qos, retain)
    rejected: dict[int, bytes] = {}
    interrupted = stalled = False
    try:
        for position, payload in enumerate(payloads, 1):
            if not publisher.make_room(timeout):
                stalled = True  # the rest of the input stays unread, so nothing read is lost
                break
            try:
                publisher.publish(payload, position)
            except UsageError as e:
                rejected[position] = payload
                on_rejected(position, e)
        result = publisher.wait(0 if stalled else timeout)
    except KeyboardInterrupt:
        result, interrupted = publisher.result(), True
    finally:
        connection.disconnect()
    undelivered = {**publisher.undelivered(), **rejected}
    if undelivered and failed_file is not None:
        write_private(failed_file, b"".join(undelivered[k] + b"\n" for k in sorted(undelivered)))
    if interrupted:
        raise Interrupted(f"interrupted: {result.unacknowledged} of {result.sent} messages not acknowledged"
                          + (f" (saved to {failed_file})" if undelivered and failed_file else ""))
    result = SendResult(result.sent, result.acked, result.failed, len(rejected))
    if result.unacknowledged or result.rejected:
        saved = f"; saved to {failed_file}" if failed_file is not None else ""
        stopped = f"; input not read past message {result.sent + result.rejected}" if stalled else ""
        raise DeliveryError(result.summary() + stopped + saved)
    return result
