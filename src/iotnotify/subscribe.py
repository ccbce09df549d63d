"""Receiving: subscribe to filters and hand each message over in arrival order."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

from iotnotify.connection import ConnectOptions, open_connection
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

    def messages(self, count: int | None = None, timeout: float | None = None) -> Iterator[Message]:
        """Yield messages until `count` arrived or `timeout` seconds passed (both optional)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        received = 0
        while count is None or received < count:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                return
            try:
                # a bounded wait keeps Ctrl-C responsive while blocked here
                message = self._queue.get(timeout=0.5 if wait is None else min(wait, 0.5))
            except queue.Empty:
                continue
            received += 1
            yield message


def check_filters(filters: list[str], host: str) -> list[str]:
    """Validate every filter for the broker at `host` (AWS IoT Core's limits where they apply)."""
    aws = is_aws_host(host)
    return [check_filter(f, aws) for f in filters]


def subscribe(source: KeySource, options: ConnectOptions, filters: list[str], qos: int):  # type: ignore[no-untyped-def]
    """Connect and subscribe (several SUBSCRIBE packets where AWS limits require); return (connection, inbox)."""
    check_filters(filters, "")  # MQTT's rules before anything goes over the network
    check_filters(filters, source.get().host)  # then the broker's own limits
    inbox = Inbox()
    connection = open_connection(source, options, inbox.put)
    try:
        for batch in subscribe_batches(filters):
            connection.subscribe(batch, qos)
    except BaseException:
        connection.disconnect()
        raise
    return connection, inbox
