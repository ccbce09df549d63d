"""Publishing: hand messages to the connections at once and count what the broker acknowledged."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from iotnotify.errors import DeliveryError, HttpsUnsupported, Interrupted, IotNotifyError, Refused, UsageError
from iotnotify.files import save_lines
from iotnotify.keys import KeySource, TemporaryKeys
from iotnotify.keys.allowance import check_publish, describe
from iotnotify.messages import Message
from iotnotify.mqtt import ConnectOptions, Kind, Outcome, Session, open_session
from iotnotify.mqtt import reason as reason_text
from iotnotify.mqtt.options import numbered
from iotnotify.outgoing import Outgoing
from iotnotify.properties import Properties, check_payload_format, check_properties, with_message_id
from iotnotify.records import parse_record
from iotnotify.topics import check_payload, check_topic
from iotnotify.words import counted, was

if TYPE_CHECKING:
    from iotnotify.signing import Signer


@dataclass(frozen=True)
class SendResult:
    """How a send ended: messages handed over, acknowledged, failed (not acknowledged in the end, or
    refused by the broker), and refused before sending (over a limit); the rest were still waiting."""

    sent: int
    acked: int
    failed: int
    rejected: int = 0
    refused: int = 0  # of `failed`: refused by the broker (a reason code, or closed by it in MQTT 3.1.1)

    @property
    def unacknowledged(self) -> int:
        """Messages the broker did not acknowledge: failed or still waiting."""
        return self.sent - self.acked

    def summary(self, refusal: str = "") -> str:
        """One line: how many of the messages were not delivered, and why."""
        total = self.sent + self.rejected
        parts = []
        if self.refused:
            parts.append(f"{self.refused} refused by the broker" + (f": {refusal}" if refusal else ""))
        if self.unacknowledged - self.refused:
            parts.append(f"{self.unacknowledged - self.refused} not acknowledged by the broker")
        if self.rejected:
            parts.append(f"{self.rejected} refused before sending")
        failed = self.unacknowledged + self.rejected
        return (f"{failed} of {counted(total, 'message')} {was(failed)} not delivered "
                f"({', '.join(parts)})")


ACK_TIMEOUT = 30.0  # s to wait for the broker to acknowledge one message (publish_one)
WINDOW = 1000
"""Messages `send` lets wait for acknowledgement before it stops reading its input: enough to keep
a connection busy (AWS IoT Core and the local broker take 100 QoS 1 messages in flight), few enough
that memory stays flat and the client's I/O thread is not starved of the GIL by a queue of
thousands of callbacks."""


class Publisher:
    """Publishes to one topic over one or more connections without waiting per message; `wait`
    collects the acknowledgements. Every payload is kept until the broker acknowledged it, so what
    was not delivered can be saved. Several connections take turns (each keeps its order), the one
    free soonest under AWS IoT Core's publish rate first."""

    def __init__(self, connections: Session | list[Session], topic: str, qos: int, retain: bool,
                 window: int = WINDOW, properties: Properties | None = None,
                 on_acked: Callable[[int], None] | None = None, ids: bool = False,
                 signer: Signer | None = None) -> None:
        self.connections = connections if isinstance(connections, list) else [connections]
        self.connection = self.connections[0]
        self.topic = topic
        self.qos = qos
        self.retain = retain
        self.properties = properties or None
        self.ids = ids  # each message gets an `iotnotify-id` where it can carry one (MQTT 5)
        self.signer = signer  # signs each message (--sign; MQTT 5): its id too
        self.window = window
        self.on_acked = on_acked  # hears each input position the broker acknowledged (the agent tells its client)
        self._turns = itertools.cycle(range(len(self.connections)))
        self._low_water = window // 2
        self._waiting_for_room = False
        self._lock = threading.Condition()
        self._sent = 0
        self._acked = 0
        self._failed = 0
        self._refused = 0
        self.refusal: Outcome | None = None  # the first refusal...
        self.refused_topic = topic  # ...and the topic it refused
        self._pending: dict[int, bytes] = {}  # input position -> payload, until acknowledged
        self._undelivered: dict[int, bytes] = {}  # input position -> payload refused or never acknowledged

    def _next(self, size: int) -> Session:
        """The connection to publish on: the next in turn that may publish now, else the one free soonest."""
        if len(self.connections) == 1:
            return self.connection
        waits = []
        for _ in self.connections:
            connection = self.connections[next(self._turns)]
            wait = connection.ready_in(size)
            if wait == 0:
                return connection
            waits.append((wait, connection))
        return min(waits, key=lambda pair: pair[0])[1]

    def publish(self, payload: bytes, position: int | None = None, message: Message | None = None,
                saved: bytes | None = None) -> None:
        """Check the payload against the broker's limit and hand it to a connection; `position` is
        its place in the input (for the order of --failed). A `message` (a replayed record) goes to
        its own topic with its own QoS, retain flag and properties; `saved` is what --failed keeps
        of it if it is not delivered (default: the payload)."""
        topic, qos, retain, properties = (self.topic, self.qos, self.retain, self.properties) if message is None \
            else (message.topic, message.qos, message.retain, message.properties)
        check_payload(len(payload), self.connection.aws)
        check_payload_format(properties, payload)
        connection = self._next(len(payload) + len(topic))
        if self.signer is not None:  # a record too, with its own id
            if not connection.carries_properties:
                raise UsageError("--sign needs MQTT 5 over WebSocket: this connection carries no properties")
            properties = self.signer.sign(topic, payload, properties, connection.aws)
        elif self.ids and message is None and connection.carries_properties:  # a record replays as it was
            properties = with_message_id(properties, connection.aws)
        with self._lock:
            self._sent += 1
            key = self._sent if position is None else position
            self._pending[key] = payload if saved is None else saved
        try:
            connection.publish(topic, payload, qos, retain, lambda outcome: self._done(key, outcome, topic), properties)
        except UsageError:  # the connection cannot send it at all (MQTT 3.1.1 and properties): not sent
            with self._lock:
                self._sent -= 1
                self._pending.pop(key, None)
            raise

    def _done(self, key: int, outcome: Outcome, topic: str = "") -> None:
        acked = outcome.kind is Kind.ACKED
        with self._lock:
            payload = self._pending.pop(key, b"")
            if acked:
                self._acked += 1
            else:
                self._failed += 1
                self._undelivered[key] = payload
                if outcome.kind is not Kind.LOST:
                    self._refused += 1
                    if self.refusal is None:
                        self.refusal, self.refused_topic = outcome, topic or self.topic
            if not self._pending or (self._waiting_for_room and len(self._pending) <= self._low_water):
                self._lock.notify_all()  # not once per message: the publishing thread wakes in batches
        if acked and self.on_acked is not None:
            self.on_acked(key)

    @property
    def stopped(self) -> IotNotifyError | None:
        """Why publishing cannot go on: a connection the broker ended for good, or (MQTT 3.1.1) closed
        after a publish, as AWS IoT Core refuses one there."""
        for connection in self.connections:
            if connection.fatal is not None:
                return connection.fatal
        if self.refusal is not None and self.refusal.kind is Kind.CLOSED:
            return Refused("the broker closed the connection after a publish")
        return None

    def refusal_text(self) -> str:
        """Why the broker refused messages, for the summary."""
        refusal = self.refusal
        if refusal is None:
            return ""
        if refusal.kind is Kind.CLOSED:
            return closed_text(self.refused_topic, self.connection)
        if refusal.not_authorized:
            return self.connection.refused_text(f"publish to {self.refused_topic!r}", text=refusal.text)
        return reason_text(refusal.code, refusal.text)

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
        """The payloads not acknowledged (still waiting, refused or failed), by input position."""
        with self._lock:
            return {**self._pending, **self._undelivered}

    def result(self) -> SendResult:
        """The counts so far."""
        with self._lock:
            return SendResult(self._sent, self._acked, self._failed, 0, self._refused)

    def wait(self, timeout: float) -> SendResult:
        """Wait until every message was acknowledged or failed, or `timeout` seconds passed."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._acked + self._failed < self._sent:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(min(remaining, 0.5))
        return self.result()


def closed_text(topic: str, session: Session) -> str:
    """What a connection closed right after a publish means (MQTT 3.1.1's only way to refuse one)."""
    return ("the broker closed the connection after the publish (MQTT 3.1.1 cannot say why; AWS IoT Core does so "
            f"when the keys may not publish to {topic!r}){describe(session.keys)}")


def open_connections(source: KeySource, options: ConnectOptions, count: int, stack: ExitStack) -> list[Session]:
    """`count` connections, each with a client id of its own (ID-1, ID-2... for a given --client-id),
    each disconnected when `stack` closes (those already open too, if one fails)."""
    return [stack.enter_context(open_session(source, numbered(options, number, count)))
            for number in range(1, count + 1)]


def check_before_sending(source: KeySource, topic: str | None, payloads: Iterable[bytes],
                             properties: Properties | None, records: bool) -> None:
    """MQTT's rules, then the broker's limits and what the keys say they may not do: refused
    before anything goes over the network (payloads too, when they are known in advance). Records
    are checked one by one as they come (their topics are their own)."""
    if records:
        source.get()
        return
    if topic is None:
        raise UsageError("a topic is needed")
    keys = publishable(source, topic, properties)
    if properties:
        check_properties(properties, keys.aws_rules)
    if isinstance(payloads, (list, tuple)):
        for payload in payloads:
            check_payload(len(payload), keys.aws_rules)
            check_payload_format(properties, payload)


def publishable(source: KeySource, topic: str, properties: Properties | None) -> TemporaryKeys:
    """The keys, once a publish to `topic` (with `properties`) breaks none of MQTT's rules and the
    keys may make it: refused before anything goes over the network."""
    check_topic(topic, aws=False)
    if properties:
        check_properties(properties, aws=False)
    keys = source.get()
    check_topic(topic, keys.aws_rules)
    check_publish(keys, topic)
    return keys


OnRejected = Callable[[int, IotNotifyError], None]


def _replaying(publisher: Publisher, source: KeySource, topic: str | None, qos: int,
               retain: bool) -> Callable[[bytes, int], None]:
    """What publishes one line of `send --records`: the record's message to its own topic, checked
    as `send` checks its one topic (MQTT's rules, the broker's limits, what the keys allow)."""
    def replay(line: bytes, position: int) -> None:
        message = parse_record(line, topic, qos, retain)
        keys = source.get()
        check_topic(message.topic, keys.aws_rules)
        check_publish(keys, message.topic)
        if message.properties:
            check_properties(message.properties, keys.aws_rules)
        publisher.publish(message.payload, position, message, saved=line)

    return replay


def send(source: KeySource, options: ConnectOptions, outgoing: Outgoing, on_rejected: OnRejected,
         fallback: bool = False) -> SendResult:
    """Publish every payload as it comes, over `outgoing.connections` connections, then wait up to
    its timeout for the acknowledgements. With `records`, each payload is a JSON record (records.py)
    published to its own topic (the topic is the default for records without one).

    A payload over the broker's limit (or a malformed record) is reported through `on_rejected` and
    skipped; the rest go out. Raises Refused if the keys or the broker refused the messages,
    DeliveryError if anything else was not delivered, Interrupted on Ctrl-C; either way the payloads
    (or records) not delivered are written to the `failed` file (one per line, in input order) if
    given. With `fallback` (the send's route has another way after HTTPS), a broker that takes no
    HTTPS publish raises HttpsUnsupported with nothing saved: nothing was delivered.
    """
    check_before_sending(source, outgoing.topic, outgoing.payloads, outgoing.properties, outgoing.records)
    connections = outgoing.connections
    if isinstance(outgoing.payloads, (list, tuple)):
        connections = min(connections, max(len(outgoing.payloads), 1))  # no connection left idle
    with ExitStack() as stack:
        publisher = Publisher(open_connections(source, options, connections, stack), outgoing.topic or "",
                              outgoing.qos, outgoing.retain, properties=outgoing.properties, ids=outgoing.ids,
                              signer=outgoing.signer)
        return deliver(publisher, source, outgoing, on_rejected, fallback)


def deliver(publisher: Publisher, source: KeySource, outgoing: Outgoing, on_rejected: OnRejected,
            fallback: bool = False) -> SendResult:
    """`send` once connected (and the agent's for each of its clients): publish every payload as it
    comes through `publisher`, wait for the acknowledgements, return or raise as `send` says."""
    rejected: dict[int, bytes] = {}
    interrupted = stalled = False
    stopped: IotNotifyError | None = None
    put = _replaying(publisher, source, outgoing.topic, publisher.qos, publisher.retain) if outgoing.records \
        else publisher.publish
    try:
        for position, payload in enumerate(outgoing.payloads, 1):
            if (stopped := publisher.stopped) is not None:
                break  # the broker will refuse the rest too: leave them unread
            if not publisher.make_room(outgoing.timeout):
                stalled = True  # the rest of the input stays unread, so nothing read is lost
                break
            try:
                put(payload, position)
            except (UsageError, Refused) as e:
                rejected[position] = payload
                on_rejected(position, e)
        result = publisher.wait(0 if stalled or stopped else outgoing.timeout)
        stopped = stopped or publisher.stopped
    except KeyboardInterrupt:
        result, interrupted = publisher.result(), True
    if isinstance(stopped, HttpsUnsupported) and fallback:
        raise stopped  # nothing was delivered: the route's next way sends it, nothing saved
    failed = Path(outgoing.failed) if outgoing.failed else None
    return _outcome(publisher, result, rejected, stopped, stalled, interrupted, failed, outgoing.single)


def _outcome(publisher: Publisher, result: SendResult, rejected: dict[int, bytes], stopped: IotNotifyError | None,
             stalled: bool, interrupted: bool, failed_file: Path | None, single: bool) -> SendResult:
    """Save what was not delivered to `failed_file`, then return the result, or raise what went wrong."""
    undelivered = {**publisher.undelivered(), **rejected}

    def save(template: str) -> str:
        return save_lines(str(failed_file), undelivered, template) if undelivered and failed_file is not None else ""

    if interrupted:
        raise Interrupted(f"interrupted: {result.unacknowledged} of {counted(result.sent, 'message')} not acknowledged"
                          + save(" (saved to {})"))
    result = replace(result, rejected=len(rejected))
    if result.unacknowledged or result.rejected or stopped is not None:
        saved = save("; saved to {}")
        unread = (stalled or stopped is not None) and not single  # a single message: no input left to read
        after = f"; input not read past message {result.sent + result.rejected}" if unread else ""
        if stopped is not None and not result.refused:
            detail = f"; {result.summary()}" if result.unacknowledged or result.rejected else ""
            raise type(stopped)(f"{stopped}{detail}{after}{saved}")
        error = Refused if publisher.refusal is not None and publisher.refusal.not_authorized else DeliveryError
        raise error(result.summary(publisher.refusal_text()) + after + saved)
    return result


def publish_one(connection: Session, topic: str, payload: bytes, qos: int, properties: Properties | None,
                retain: bool = False, timeout: float = ACK_TIMEOUT) -> None:
    """Publish one message and wait for its acknowledgement (QoS 1); Refused or DeliveryError if it
    fails (a request, a response, an empty retained message)."""
    done = threading.Event()
    outcomes: list[Outcome] = []

    def completed(outcome: Outcome) -> None:
        outcomes.append(outcome)
        done.set()

    connection.publish(topic, payload, qos, retain, completed, properties)
    if not done.wait(timeout):
        raise DeliveryError(f"the broker did not acknowledge the message to {topic!r} within {timeout:g} s")
    outcome = outcomes[0]
    if outcome.kind is Kind.CLOSED:
        raise Refused(f"broker refused the message: {closed_text(topic, connection)}")
    if outcome.not_authorized:
        raise Refused(f"broker refused the message: {connection.refused_text(f'publish to {topic!r}', text=outcome.text)}")
    if outcome.kind is Kind.LOST:
        raise DeliveryError(f"the message to {topic!r} was not acknowledged (the connection was lost)")
    if outcome.kind is not Kind.ACKED:
        raise DeliveryError(f"broker refused the message to {topic!r}: {reason_text(outcome.code, outcome.text)}")
