"""Running a job for each message received, N at a time, from a bounded queue: what `respond` and
`on` share.

Nothing a peer publishes grows it without bound: messages wait in a bounded inbox (`queue`); a
QoS 1 message is acknowledged only once its job is done, and the broker, told how many it may have
unacknowledged (Receive Maximum: `queue` + `parallel`), holds the rest back; a QoS 0 message
beyond the queue is refused (`on_full` hears of it). So a job that is slow to run slows the
flow, and one that ends early (Ctrl-C) leaves a persistent session's messages to come again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Generic, TypeVar

from iotnotify.inbox import Inbox
from iotnotify.keys import KeySource
from iotnotify.messages import Message
from iotnotify.mqtt import ConnectOptions, Protocol, Session

Result = TypeVar("Result")
OnRefused = Callable[[Message, str], None]


class Workers(Generic[Result]):
    """Runs `work(message)` for each message handed to it, `parallel` at a time, then acknowledges
    the message and hands what the work returned to `done` (in the worker's thread)."""

    def __init__(self, parallel: int, work: Callable[[Message], Result], done: Callable[[Result], None],
                 name: str) -> None:
        self.work, self.done = work, done
        self.started = 0  # messages handed to a slot
        self._slots = threading.Semaphore(parallel)
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix=f"iotnotify-{name}")

    def reserve(self) -> None:
        """Wait for a free slot (a message is taken from the queue only then); Ctrl-C and SIGTERM
        interrupt the wait."""
        self._slots.acquire()

    def start(self, message: Message) -> None:
        """Run the work for `message` in the slot reserved for it."""
        self.started += 1
        self._pool.submit(self._run, message)

    def release(self) -> None:
        """Give back a slot reserved for a message that will not be worked on."""
        self._slots.release()

    def close(self) -> None:
        """Wait for the messages being worked on, then stop."""
        self._pool.shutdown(wait=True)

    def _run(self, message: Message) -> None:
        try:
            result = self.work(message)
        finally:
            self._slots.release()
            if message.ack is not None:
                message.ack()
        self.done(result)


def subscribe_queued(source: KeySource, options: ConnectOptions, filters: list[str], qos: int, parallel: int,
                     queue: int, on_full: OnRefused, what: str = "messages", **more: Any) -> tuple[Session, Inbox]:
    """Subscribe to `filters` for Workers that run for days: a connection the broker ends is made
    again, QoS 1 messages are acknowledged once worked on and the broker told to hold back more than
    `queue` + `parallel` (Receive Maximum), QoS 0 ones beyond `queue` refused (`on_full` hears of
    it, in words of `what` they are). Over MQTT 3.1.1 (no Receive Maximum; awscrt acknowledges each
    message on arrival) a message beyond `queue` waits in the MQTT thread instead, which holds the
    connection back (as subscribe's inbox does). `more` as subscribe's."""
    from iotnotify.subscribe import subscribe

    options = replace(options, long_running=True, receive_maximum=min(queue + parallel, 65_535), manual_ack=True)
    if options.protocol != Protocol.V5:  # awscrt's MQTT 3.1.1 client acknowledges on arrival: nothing is
        return subscribe(source, options, filters, qos, inbox=Inbox(queue), **more)  # refused, the flow held back
    return subscribe(source, options, filters, qos, inbox=Inbox(queue, refuse_when_full(queue, on_full, what)),
                     **more)


def refuse_when_full(queue: int, on_refused: OnRefused, what: str) -> Callable[[Message], None]:
    """What an inbox of `queue` messages does with one more (in the MQTT thread: at once): it is
    refused, and said (a QoS 1 one is acknowledged: the broker need not hold it for us)."""
    def full(message: Message) -> None:
        if message.ack is not None:
            message.ack()
        on_refused(message, f"{queue} {what} are waiting already (--queue {queue})")

    return full


def serve(messages: Iterator[Message], workers: Workers[Any], count: int | None, on_refused: OnRefused,
          refusal: Callable[[Message], str | None] | None = None) -> int:
    """Hand `messages` to `workers`, each when a slot is free, until `count` were handed over or
    they end; a message `refusal` has a reason for is acknowledged and said (`on_refused`)
    instead. How many were handed over."""
    handled = 0
    while count is None or handled < count:
        workers.reserve()
        try:
            message = next(messages)
        except StopIteration:  # they ended (-W)
            workers.release()
            return handled
        except BaseException:
            workers.release()
            raise
        if refusal is not None and (why := refusal(message)) is not None:
            workers.release()
            if message.ack is not None:
                message.ack()
            on_refused(message, why)
            continue
        workers.start(message)
        handled += 1
    return handled
