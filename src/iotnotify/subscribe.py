"""Receiving: subscribe to filters and hand each message over in arrival order."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

from iotnotify import limits
from iotnotify.allowance import subscribe_refusals
from iotnotify.errors import ConnectError, IotNotifyError, ReceiveTimeout, Refused, UsageError
from iotnotify.keys import KeySource, TemporaryKeys
from iotnotify.messages import Message
from iotnotify.mqtt import Connection, ConnectOptions, OnState, State, open_connection, refusal
from iotnotify.topics import check_filter, subscribe_batches

OnRefused = Callable[[IotNotifyError], None]  # a filter refused, with --partial: say so and go on


BURST = 0.001  # s: a message this soon after the one before is part of a burst...
FLUSH_AFTER = 0.001  # s: ...flushed with the rest of it this much later, by the waiting thread


class Inbox:
    """A thread-safe queue between the MQTT threads (producers) and the command (consumer); an
    error put in it (giving up on the connection) is raised to the consumer in its turn.

    Or, after deliver_to(), no queue for the messages: each goes to a function in the thread that
    received it, and the consumer only waits for the end (wait()). Handing every message from
    awscrt's thread to the consumer's costs a wake-up and two GIL hand-overs whenever the consumer
    keeps up: 30% of a plain `subscribe`'s CPU per message (bench/README.md, Round two, 7)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Message | BaseException] = queue.SimpleQueue()
        self._order = threading.Lock()  # a message handed over directly waits for those queued before it
        self._deliver: Callable[[Message], None] | None = None
        self._flush: Callable[[], None] | None = None
        self._wake = threading.Event()  # for wait(): a burst to flush, or the end
        self._last = 0.0  # when the last message was delivered (monotonic)
        self._stopped = False

    def put(self, message: Message) -> None:
        """Called by the client for each message received."""
        with self._order:
            if self._deliver is None:
                self._queue.put(message)
            elif not self._stopped:
                try:
                    self._deliver(message)
                    if self._flush is not None:
                        now = time.monotonic()
                        if now - self._last > BURST:
                            self._flush()  # on its own: out at once
                        elif not self._wake.is_set():  # (set() takes a lock: not per message)
                            self._wake.set()  # in a burst: wait() flushes it soon
                        self._last = now
                except BaseException as e:  # the output failed (a closed pipe): wait() raises it
                    self._stopped = True
                    self._queue.put(e)
                    self._wake.set()

    def deliver_to(self, deliver: Callable[[Message], None], flush: Callable[[], None] | None = None) -> None:
        """From now on hand each message to `deliver` in the thread that received it, after those
        queued so far (delivered here first); an exception it raises ends wait() with it. With
        `flush`, a message on its own is flushed at once, and a burst's (messages less than BURST
        apart) by wait() FLUSH_AFTER later: a write every millisecond instead of one per message."""
        with self._order:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, BaseException):
                    self._queue.put(item)  # the end came first: wait() raises it
                    return
                deliver(item)
            if flush is not None:
                flush()
            self._deliver, self._flush = deliver, flush

    def stop(self) -> None:
        """Deliver nothing more (the command is ending), after the message being delivered now, if
        it ends within a second (a write to a pipe nobody reads may never end: then at once), and
        flush what was delivered."""
        finished = self._order.acquire(timeout=1)
        self._stopped = True
        if finished:
            try:
                if self._flush is not None:
                    self._flush()
            except OSError:
                pass  # a closed pipe: nothing more can go out
            finally:
                self._order.release()

    def wait(self) -> NoReturn:
        """With deliver_to(): flush bursts, and wait until the stream ends with an error, and raise it."""
        while True:
            woken = self._wake.wait(0.5)  # a bounded wait keeps Ctrl-C responsive while blocked here
            try:
                self._get(0)  # the end: raised
            except queue.Empty:
                pass
            if woken:  # a burst: flush it once the next few messages are in too
                time.sleep(FLUSH_AFTER)
                with self._order:
                    self._wake.clear()
                    if not self._stopped and self._flush is not None:
                        self._flush()

    def empty(self) -> bool:
        """Whether nothing is waiting to be read now."""
        return self._queue.empty()

    def fail(self, error: IotNotifyError) -> None:
        """End the stream with `error`, after the messages already queued."""
        self._queue.put(error)
        self._wake.set()

    def _get(self, timeout: float) -> Message:
        item = self._queue.get(timeout=timeout)
        if isinstance(item, BaseException):
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


def stream(inbox: Inbox, timeout: float | None = None, count: int | None = None,
           retained: str = "all") -> Iterator[Message]:
    """The messages `subscribe` prints: those the broker sends within `timeout` seconds, at most
    `count`; with `retained` "without", no retained ones (--no-retained); with "only", the retained
    ones until the first live one or RETAINED_IDLE seconds without any (--retained-only)."""
    messages = inbox.messages(timeout, RETAINED_IDLE if retained == "only" else None)
    if retained == "without":
        messages = without_retained(messages)
    elif retained == "only":
        messages = retained_only(messages)
    return itertools.islice(messages, count)


def mark_ready(path: str | None) -> None:
    """--ready-file: create `path` (the subscription is acknowledged); UsageError if it cannot be."""
    if path:
        try:
            Path(path).touch()
        except OSError as e:
            raise UsageError(f"cannot create --ready-file {path}: {e.strerror}") from None


def check_enough(received: int, count: int | None, timeout: float | None, retained: str = "all",
                 what: str = "messages") -> None:
    """ReceiveTimeout if -W ran out before -C N messages (or, without -C, at all: as mosquitto_sub)."""
    if timeout is not None and retained != "only" and (count is None or received < count):
        expected = f" of {count}" if count is not None else ""
        raise ReceiveTimeout(f"received {received}{expected} {what} within {timeout:g} s")


def check_retained_only(keys: TemporaryKeys, filters: list[str]) -> None:
    """--retained-only under AWS IoT Core's rules, which send a retained message upon subscription
    only to a filter equal to its topic: a wildcard filter would get none, so say so at once."""
    for topic_filter in filters:
        if keys.aws_rules and ("+" in topic_filter or "#" in topic_filter):
            raise UsageError("--retained-only: AWS IoT Core sends a retained message only to a filter that is "
                             f"its topic, and {topic_filter!r} has a wildcard")


def _check_filters(source: KeySource, filters: list[str], on_refused: OnRefused | None,
                   retained_only: bool) -> list[str]:
    """MQTT's rules, the broker's limits, then what the keys say they allow: the filters to subscribe to."""
    for topic_filter in filters:  # MQTT's rules before anything goes over the network
        check_filter(topic_filter, aws=False)
    keys = source.get()
    for topic_filter in filters:  # then the broker's own limits
        check_filter(topic_filter, keys.aws_rules)
    if retained_only:
        check_retained_only(keys, filters)
    if keys.aws_rules and len(set(filters)) > limits.MAX_SUBSCRIPTIONS:
        raise UsageError(f"{len(set(filters))} filters, but AWS IoT Core allows at most "
                         f"{limits.MAX_SUBSCRIPTIONS} subscriptions per connection")
    denied = subscribe_refusals(keys, filters)
    if denied:
        if on_refused is None or len(denied) == len(filters):
            raise next(iter(denied.values()))
        for error in denied.values():
            on_refused(error)
    return [f for f in filters if f not in denied]


def subscribe(source: KeySource, options: ConnectOptions, filters: list[str], qos: int,
              on_state: OnState | None = None, max_reconnects: int | None = None,
              on_refused: OnRefused | None = None, retained_only: bool = False) -> tuple[Connection, Inbox]:
    """Connect and subscribe (several SUBSCRIBE packets where AWS limits require); return (connection,
    inbox). A refused filter raises Refused, unless `on_refused` (--partial) hears of it and at least
    one filter was granted. With `max_reconnects`, the inbox fails with a ConnectError once that many
    reconnection attempts failed in a row (0: as soon as the connection is lost); it fails with the
    connection's error when the broker ends it for good (taken over, refused)."""
    filters = _check_filters(source, filters, on_refused, retained_only)
    where = source.get().host
    inbox = Inbox()
    report = on_state or (lambda _state, _attempt: None)
    opened: list[Connection] = []

    def watch(state: State, attempt: int) -> None:
        report(state, attempt)
        if state == State.FAILED and opened and opened[0].fatal is not None:
            inbox.fail(opened[0].fatal)
        if max_reconnects is None or state != State.RECONNECTING:
            return
        if max_reconnects == 0:
            inbox.fail(ConnectError(f"connection to broker {where} lost (--no-reconnect)"))
        elif attempt > max_reconnects:
            inbox.fail(ConnectError(f"broker {where} unreachable: gave up after {max_reconnects} "
                                    "reconnection attempts"))

    connection = open_connection(source, options, inbox.put, watch)
    opened.append(connection)
    try:
        _subscribe_all(connection, filters, qos, on_refused)
    except BaseException:
        connection.disconnect()
        raise
    return connection, inbox


def _subscribe_all(connection: Connection, filters: list[str], qos: int, on_refused: OnRefused | None) -> None:
    """Subscribe to `filters` (several SUBSCRIBE packets where AWS limits require); raise the refusal
    of a filter (unless `on_refused` hears of it), Refused if none was granted, or the connection's
    own error if the broker ended it meanwhile."""
    granted = 0
    for batch in subscribe_batches(filters):
        for topic_filter, code in zip(batch, connection.subscribe(batch, qos), strict=True):
            if code < 0x80:
                granted += 1
            elif on_refused is None:
                raise refusal(connection, topic_filter, code)
            else:
                on_refused(refusal(connection, topic_filter, code))
    if not granted:
        raise Refused("every subscription was refused")
    if connection.fatal is not None:
        raise connection.fatal
