"""The inbox's bound (issue 26, item 2): what a peer publishes faster than the command reads waits in
the MQTT thread (the connection held back) or goes to `on_full`, never into memory without end."""

from __future__ import annotations

import threading

from iotnotify.errors import ConnectError
from iotnotify.inbox import QUEUE_LIMIT, Inbox
from iotnotify.messages import Message
from tests.helpers import wait_for, waiting


def put_in_thread(inbox: Inbox, message: Message) -> threading.Thread:
    """inbox.put(message) in a thread of its own, returned once it waits for room."""
    thread = threading.Thread(target=inbox.put, args=(message,), daemon=True)
    thread.start()
    wait_for(lambda: bool(inbox._room._waiters), 5, "the message to wait for room")
    return thread


def reading(inbox: Inbox) -> Inbox:
    """`inbox` once its reader began (before, nothing waits: the SUBACKs are still to come)."""
    assert inbox.drain(0.001) == []
    return inbox


def test_before_the_command_reads_nothing_waits_in_the_mqtt_thread():
    inbox = Inbox(limit=1)
    for n in range(3):
        inbox.put(Message("t", str(n).encode()))  # would wait for ever in this thread if it waited
    assert inbox.waiting == 3


def test_a_full_inbox_holds_the_next_message_until_the_reader_takes_one():
    inbox = reading(Inbox(limit=2))
    inbox.put(Message("t", b"1"))
    inbox.put(Message("t", b"2"))
    third = put_in_thread(inbox, Message("t", b"3"))
    assert inbox.waiting == 2  # held in the MQTT thread, not queued
    assert next(inbox.messages(timeout=1)).payload == b"1"
    third.join(2)
    assert not third.is_alive()
    assert [m.payload for m in inbox.drain(0.1)] == [b"2", b"3"]


def test_the_bytes_bound_holds_too():
    inbox = reading(Inbox(limit=100, limit_bytes=10))
    inbox.put(Message("t", b"x" * 8))
    held = put_in_thread(inbox, Message("t", b"y" * 8))
    inbox.drain(0.1)
    held.join(2)
    assert not held.is_alive()


def test_what_does_not_fit_goes_to_on_full_at_once():
    refused: list[bytes] = []
    inbox = Inbox(limit=1, on_full=lambda m: refused.append(m.payload))
    for n in range(4):
        inbox.put(Message("t", str(n).encode()))
    assert refused == [b"1", b"2", b"3"] and inbox.waiting == 1


def test_messages_the_broker_holds_back_are_kept_past_the_limit_up_to_the_hard_one():
    refused: list[bytes] = []
    inbox = Inbox(limit=1, on_full=lambda m: refused.append(m.payload))
    for n in range(5):  # acknowledged when used: the broker sends only a few more than it was told
        inbox.put(Message("t", str(n).encode(), qos=1, ack=lambda: None))
    assert refused == [] and inbox.waiting == 5
    assert QUEUE_LIMIT >= 10_000


def test_stopping_lets_a_held_message_go_so_the_connection_can_close():
    inbox = reading(Inbox(limit=1))
    inbox.put(Message("t", b"1"))
    held = put_in_thread(inbox, Message("t", b"2"))
    inbox.stop()
    held.join(2)
    assert not held.is_alive()


def test_delivering_directly_does_not_wait_for_a_producer_held_by_a_full_queue():
    inbox = reading(Inbox(limit=1))
    inbox.put(Message("t", b"1"))
    held = put_in_thread(inbox, Message("t", b"2"))  # holds the order lock while it waits for room
    got: list[bytes] = []
    switching = threading.Thread(target=inbox.deliver_to, args=(lambda m: m.payload, lambda data, _n: got.append(bytes(data))),
                                 daemon=True)
    switching.start()
    switching.join(2)
    held.join(2)
    assert not switching.is_alive() and not held.is_alive()
    waiter, ended = waiting(inbox)  # writes what was rendered, until fail()
    inbox.put(Message("t", b"3"))
    wait_for(lambda: b"".join(got) == b"123", 5, "the output")
    inbox.fail(ConnectError("connection lost"))
    waiter.join(5)
    assert not waiter.is_alive() and ended


def test_the_rate_watch_warns_once_per_episode_at_aws_outbound_rate():
    """subscribe.RateWatch: 90 messages within a second (of AWS IoT Core's 100) is the limit: said
    once, not again while the flood goes on, and again after CALM seconds below it."""
    from iotnotify.subscribe import AT_THE_LIMIT, CALM, RateWatch

    now, said, got = [1000.0], [], []
    watch = RateWatch(got.append, said.append, clock=lambda: now[0])

    def second(count: int) -> None:
        for _ in range(count):
            watch(Message("t", b"x"))
            now[0] += 1 / max(count, 1) * 0.99
        now[0] += 0.02

    second(80)
    assert said == []  # below the limit
    for _ in range(5):
        second(100)
    assert said == [AT_THE_LIMIT] and len(got) == 580  # every message handed on, one warning
    now[0] += CALM + 1
    second(100)
    assert said == [AT_THE_LIMIT] * 2
