"""Receiving: subscribe to filters and hand each message over in arrival order."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iotnotify import limits
from iotnotify.dedupe import Dedupe
from iotnotify.errors import ConnectError, IotNotifyError, ReceiveTimeout, Refused, UsageError
from iotnotify.inbox import Inbox
from iotnotify.keys import KeySource, TemporaryKeys
from iotnotify.keys.allowance import subscribe_refusals
from iotnotify.messages import Message
from iotnotify.mqtt import ConnectOptions, OnState, Session, State, open_session
from iotnotify.mqtt.options import numbered
from iotnotify.selection import Selection, screened
from iotnotify.topics import check_filter, shared, subscribe_batches

if TYPE_CHECKING:
    from iotnotify.signing import Verifier

OnRefused = Callable[[IotNotifyError], None]  # a filter refused, with --partial: say so and go on


RETAINED_IDLE = 1.0  # s: retained messages come right after the SUBACK; this long without one ends them
BUSY_SHARE = 0.9  # of AWS IoT Core's outbound rate: a second with this many messages is at the limit
CALM = 10.0  # s below the limit that end an episode (the next second at it is warned of again)
AT_THE_LIMIT = (f"messages arrive at AWS IoT Core's limit of {limits.OUTBOUND_RATE} a second to a connection: "
                "more may have been discarded by the broker, which does not say so (shared subscriptions "
                "spread them: subscribe --connections N, respond --share GROUP)")


class RateWatch:
    """Hands each message on, and says once per episode (`on_busy`) when they arrive at AWS IoT Core's
    outbound rate: the broker discards what is over it without a word, so a client can only see it
    coming. An episode ends after CALM seconds below the rate. One clock read a message."""

    def __init__(self, put: Callable[[Message], None], on_busy: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.put, self.on_busy, self.clock = put, on_busy, clock
        self.threshold = int(limits.OUTBOUND_RATE * BUSY_SHARE)
        self._second_ends, self._count = clock() + 1, 0
        self._busy_until = float("-inf")  # the episode lasts while seconds at the limit come before this

    def __call__(self, message: Message) -> None:
        now = self.clock()
        if now >= self._second_ends:
            self._second_ends, self._count = now + 1, 0
        self._count += 1
        self.put(message)  # first: a warning that fails (a closed stderr) must not lose it
        if self._count == self.threshold:
            if now >= self._busy_until:
                self.on_busy(AT_THE_LIMIT)
            self._busy_until = now + CALM


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
           retained: str = "all", selection: Selection | None = None,
           dedupe: Dedupe | None = None, verifier: Verifier | None = None) -> Iterator[Message]:
    """The messages `subscribe` prints: those the broker sends within `timeout` seconds, at most
    `count`; with `retained` "without", no retained ones (--no-retained); with "only", the retained
    ones until the first live one or RETAINED_IDLE seconds without any (--retained-only); only those
    `selection` admits (--exclude, --grep), `verifier` (--verify), then `dedupe` (--dedupe)."""
    messages = inbox.messages(timeout, RETAINED_IDLE if retained == "only" else None)
    if retained == "without":
        messages = without_retained(messages)
    elif retained == "only":
        messages = retained_only(messages)
    return itertools.islice(screened(messages, selection, dedupe, verifier), count)


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
              on_refused: OnRefused | None = None, retained_only: bool = False, inbox: Inbox | None = None,
              on_dropped: OnRefused | None = None, on_busy: Callable[[str], None] | None = None,
              on_notice: Callable[[str], None] | None = None, patient: bool | None = None) -> tuple[Session, Inbox]:
    """Connect and subscribe (several SUBSCRIBE packets where AWS limits require); return (connection,
    inbox: `inbox`, or a new one). A refused filter raises Refused, unless `on_refused` (--partial)
    hears of it and at least one filter was granted. With `max_reconnects`, the inbox fails with a
    ConnectError once that many reconnection attempts failed in a row (0: as soon as the connection
    is lost); it fails with the connection's error when the broker ends it for good (taken over,
    refused; with `options.long_running` only taken over: `on_dropped` hears why it was ended).
    Under AWS IoT Core's rules, `on_busy` hears when messages arrive at its outbound rate (RateWatch);
    `on_notice`, what the broker settled otherwise than asked (a shorter session expiry);
    `patient`, whether the SUBACKs are waited for through outages (Session.subscribe; default: a
    long-running command's are, but one with a time limit of its own, -W, passes False)."""
    filters = _check_filters(source, filters, on_refused, retained_only)
    where = "{0.host}:{0.port}".format(source.get())  # as Session.where says it
    inbox = inbox if inbox is not None else Inbox()
    report = on_state or (lambda _state, _attempt: None)
    opened: list[Session] = []
    gave_up: list[ConnectError] = []  # why, once --max-reconnects (or --no-reconnect) ended it

    def watch(state: State, attempt: int) -> None:
        report(state, attempt)
        if state == State.FAILED and opened and opened[0].fatal is not None:
            inbox.fail(opened[0].fatal)
        if max_reconnects is None or state != State.RECONNECTING or gave_up:
            return
        if max_reconnects == 0:
            gave_up.append(ConnectError(f"connection to broker {where} lost (--no-reconnect)"))
        elif attempt > max_reconnects:
            gave_up.append(ConnectError(f"broker {where} unreachable: gave up after {max_reconnects} "
                                        "reconnection attempts"))
        if gave_up:
            inbox.fail(gave_up[0])

    put: Callable[[Message], None] = inbox.put
    if on_busy is not None and source.get().aws_rules:
        put = RateWatch(put, on_busy)
    connection = open_session(source, options, put, watch)
    connection.on_dropped = on_dropped
    connection.listen(on_notice)
    opened.append(connection)
    try:
        _subscribe_all(connection, filters, qos, on_refused, patient, lambda: gave_up[0] if gave_up else None)
    except BaseException:
        inbox.stop()
        connection.disconnect()
        raise
    return connection, inbox


class Connections:
    """Connections that deliver into one inbox, used as one (a context manager that disconnects them all)."""

    def __init__(self, sessions: list[Session]) -> None:
        self.sessions = sessions

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.disconnect()

    def disconnect(self) -> None:
        for session in self.sessions:
            session.disconnect()


def subscribe_shared(source: KeySource, options: ConnectOptions, filters: list[str], qos: int, connections: int,
                     group: str, **more: Any) -> tuple[Connections, Inbox]:
    """Subscribe `connections` connections to `filters` as shared subscriptions of `group` (those
    given as $share/NAME/... stay as they are), their messages into one inbox. The broker gives each
    message to one member of a group, so N connections take N times AWS IoT Core's 100 messages a
    second per connection; `more` as subscribe's, for each connection."""
    filters, inbox = shared(filters, group), more.pop("inbox", None) or Inbox()
    opened: list[Session] = []
    try:
        for number in range(1, connections + 1):
            if number > 1:  # what the broker settles (a shorter session expiry) is said once, not N times
                more["on_notice"] = None
            opened.append(subscribe(source, numbered(options, number, connections), filters, qos, inbox=inbox,
                                    **more)[0])
    except BaseException:
        Connections(opened).disconnect()
        raise
    return Connections(opened), inbox


def _subscribe_all(connection: Session, filters: list[str], qos: int, on_refused: OnRefused | None,
                   patient: bool | None, given_up: Callable[[], IotNotifyError | None]) -> None:
    """Subscribe to `filters` (several SUBSCRIBE packets where AWS limits require); raise the refusal
    of a filter (unless `on_refused` hears of it), Refused if none was granted, the connection's
    own error if the broker ended it meanwhile, or why the caller gave up (`given_up`) during an
    outage before the SUBACKs."""
    granted = 0
    for batch in subscribe_batches(filters):
        for topic_filter, code in zip(batch, connection.subscribe(batch, qos, patient=patient, given_up=given_up), strict=True):
            if code < 0x80:
                granted += 1
            elif on_refused is None:
                raise connection.refusal(topic_filter, code)
            else:
                on_refused(connection.refusal(topic_filter, code))
    if not granted:
        raise Refused("every subscription was refused")
    if connection.fatal is not None:
        raise connection.fatal
