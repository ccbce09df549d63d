"""Receiving: subscribe to filters and hand each message over in arrival order."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

from iotnotify.connection import ConnectOptions, OnState, open_connection
from iotnotify.keys import KeySource
from iotnotify.messages import Message
from iotnotify.topics import check_filter, is_aws_host, subscribe_batches


class Inbox:
    """A thread-safe queue between the MQTT threads (producers) and the command (consumer)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Message] = queue.SimpleQueue()

    def put(self, message: Message) -> None:
        """Called by the client for each message received."""
        self._queue.put(message)

    def messages(self, timeout: float | None = None, idle: float | None = None) -> Iterator[Message]:
        """Yield messages as they arrive until `timeout` seconds passed in all, or none arrived for
        `idle` seconds (both optional)."""
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
                message = self._queue.get(timeout=0.5 if end is None else min(end - now, 0.5))
            except queue.Empty:
                continue
            last = time.monotonic()
            yield message


    def drain(self, wait: float) -> list[Message]:
        """Every message queued now, waiting up to `wait` seconds for the first (a batch for `tail`)."""
        try:
            batch = [self._queue.get(timeout=wait)]
        except queue.Empty:
            return []
        while True:
            try:
                batch.append(self._queue.get_nowait())
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


def check_filters(filters: list[str], host: str) -> list[str]:
    """Validate every filter for the broker at `host` (AWS IoT Core's limits where they apply)."""
    aws = is_aws_host(host)
    return [check_filter(f, aws) for f in filters]


def subscribe(source: KeySource, options: ConnectOptions, filters: list[str], qos: int,  # type: ignore[no-untyped-def]
              on_state: OnState | None = None):
    """Connect and subscribe (several SUBSCRIBE packets where AWS limits require); return (connection, inbox)."""
    check_filters(filters, "")  # MQTT's rules before anything goes over the network
    check_filters(filters, source.get().host)  # then the broker's own limits
    inbox = Inbox()
    connection = open_connection(source, options, inbox.put, on_state)
    try:
        for batch in subscribe_batches(filters):
            connection.subscribe(batch, qos)
    except BaseException:
        connection.disconnect()
        raise
    return connection, inbox
