"""Receiving: subscribe to filters and hand each message over in arrival order."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

from iotnotify.connection import ConnectOptions, OnState, open_connection
from iotnotify.errors import ConnectError, IotNotifyError
from iotnotify.keys import KeySource
from iotnotify.messages import Message
from iotnotify.topics import check_filter, is_aws_host, subscribe_batches


class Inbox:
    """A thread-safe queue between the MQTT threads (producers) and the command (consumer); an
    error put in it (giving up on the connection) is raised to the consumer in its turn."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Message | IotNotifyError] = queue.SimpleQueue()

    def put(self, message: Message) -> None:
        """Called by the client for each message received."""
        self._queue.put(message)

    def empty(self) -> bool:
        """Whether nothing is waiting to be read now."""
        return self._queue.empty()

    def fail(self, error: IotNotifyError) -> None:
        """End the stream with `error`, after the messages already queued."""
        self._queue.put(error)

    def _get(self, timeout: float) -> Message:
        item = self._queue.get(timeout=timeout)
        if isinstance(item, IotNotifyError):
            self._queue.put(item)  # every later read fails the same way
            raise item
        return item

    def messages(self, timeout: float | None = None, idle: float | None = None) -> Iterator[Message]:
        """Yield messages as they arrive until `timeout` seconds passed in all, or none arrived for
        `idle` seconds (both optional)."""
        if timeout is None and idle is None:  # the common case, per message: no clock to read
            while True:
                try:
                    yield self._get(0.5)  # a bounded wait keeps Ctrl-C responsive while blocked here
                except queue.Empty:
                    continue
        deadline = None if timeout is None else time.monotonic() + timeout
        last = time.monotonic()
        while True:
            now = time.monotonic()
            ends = [t for t in (deadline, None if idle is None else last + idle) if t is not None]
            end = min(ends) if ends else None
            if end is not None and now >= end:
                return
            try:
                # a bounded wait keeps Ctrl-C responsive while blocked here
                message = self._get(0.5 if end is None else min(end - now, 0.5))
            except queue.Empty:
                continue
            last = time.monotonic()
            yield message


    def drain(self, wait: float) -> list[Message]:
        """Every message queued now, waiting up to `wait` seconds for the first (a batch for `tail`)."""
        try:
            batch = [self._get(wait)]
        except queue.Empty:
            return []
        while True:
            try:
                batch.append(self._get(0))
            except queue.Empty:
                return batch


RETAINED_IDLE = 1.0  # s: retained messages come right after the SUBACK; this long without one ends them


def without_retained(messages: Iterator[Message]) -> Iterator[Message]:
    """--no-retained: skip the messages the broker had retained."""
    return (m for m in messages if not m.retain)


def retained_only(messages: Iterator[Message]) -> Iterator[Message]:
    """--retained-only: the retained messages, ending at the first live one."""
    for message in messages:
        if not message.retain:
            return
        yield message


def subscribe(source: KeySource, options: ConnectOptions, filters: list[str], qos: int,  # type: ignore[no-untyped-def]
              on_state: OnState | None = None, max_reconnects: int | None = None):
    """Connect and subscribe (several SUBSCRIBE packets where AWS limits require); return (connection,
    inbox). With `max_reconnects`, the inbox fails with a ConnectError once that many reconnection
    attempts failed in a row (0: as soon as the connection is lost)."""
    for topic_filter in filters:  # MQTT's rules before anything goes over the network
        check_filter(topic_filter, aws=False)
    where = source.get().host
    for topic_filter in filters:  # then the broker's own limits
        check_filter(topic_filter, is_aws_host(where))
    inbox = Inbox()
    report = on_state or (lambda _state, _attempt: None)

    def watch(state: str, attempt: int) -> None:
        report(state, attempt)
        if max_reconnects is None or state != "reconnecting":
            return
        if max_reconnects == 0:
            inbox.fail(ConnectError(f"connection to broker {where} lost (--no-reconnect)"))
        elif attempt > max_reconnects:
            inbox.fail(ConnectError(f"broker {where} unreachable: gave up after {max_reconnects} "
                                    "reconnection attempts"))

    connection = open_connection(source, options, inbox.put, watch)
    try:
        for batch in subscribe_batches(filters):
            connection.subscribe(batch, qos)
    except BaseException:
        connection.disconnect()
        raise
    return connection, inbox
