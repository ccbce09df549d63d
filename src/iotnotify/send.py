"""Publishing: hand messages to the connection at once and count what the broker acknowledged."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from iotnotify.connection import Connection, ConnectOptions, open_connection
from iotnotify.errors import DeliveryError, Interrupted, UsageError
from iotnotify.keys import KeySource
from iotnotify.topics import check_payload, check_topic, is_aws_host


@dataclass(frozen=True)
class SendResult:
    """How a send ended: messages handed over, acknowledged, failed, and still waiting."""

    sent: int
    acked: int
    failed: int
    rejected: int = 0

    @property
    def pending(self) -> int:
        """Messages neither acknowledged nor failed yet."""
        return self.sent - self.acked - self.failed

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


class Publisher:
    """Publishes to one topic without waiting per message; `wait` collects the acknowledgements."""

    def __init__(self, connection: Connection, topic: str, qos: int, retain: bool) -> None:
        self.connection = connection
        self.topic = topic
        self.qos = qos
        self.retain = retain
        self._lock = threading.Condition()
        self._sent = 0
        self._acked = 0
        self._failed = 0

    def publish(self, payload: bytes) -> None:
        """Check the payload against the broker's limit and hand it to the client."""
        check_payload(len(payload), self.connection.aws)
        with self._lock:
            self._sent += 1
        self.connection.publish(self.topic, payload, self.qos, self.retain, self._done)

    def _done(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self._acked += 1
            else:
                self._failed += 1
            self._lock.notify_all()

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
         retain: bool, timeout: float, on_rejected: Callable[[int, UsageError], None]) -> SendResult:
    """Publish every payload as it comes, then wait up to `timeout` s for the acknowledgements.

    A payload over the broker's limit is reported through `on_rejected` and skipped; the rest go out.
    Raises DeliveryError if anything was not delivered, Interrupted on Ctrl-C.
    """
    check_topic(topic, aws=False)  # MQTT's rules before anything goes over the network
    aws = is_aws_host(source.get().host)
    check_topic(topic, aws)
    if isinstance(payloads, (list, tuple)):  # known in advance: refuse before connecting
        for payload in payloads:
            check_payload(len(payload), aws)
    connection = open_connection(source, options)
    publisher = Publisher(connection, topic, qos, retain)
    rejected = 0
    try:
        for index, payload in enumerate(payloads, 1):
            try:
                publisher.publish(payload)
            except UsageError as e:
                rejected += 1
                on_rejected(index, e)
        result = publisher.wait(timeout)
    except KeyboardInterrupt:
        result = publisher.result()
        raise Interrupted(f"interrupted: {result.unacknowledged} of {result.sent} messages "
                          "not acknowledged") from None
    finally:
        connection.disconnect()
    result = SendResult(result.sent, result.acked, result.failed, rejected)
    if result.unacknowledged or result.rejected:
        raise DeliveryError(result.summary())
    return result
