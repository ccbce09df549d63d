"""Request and response over MQTT 5 (as mosquitto_rr): `request` publishes with a response topic and
correlation data and waits for the replies that carry it back; `respond` answers each request it
receives with what a command prints."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from iotnotify.allowance import check_publish
from iotnotify.errors import DeliveryError, Refused, UsageError
from iotnotify.keys import KeySource, TemporaryKeys
from iotnotify.messages import Message
from iotnotify.mqtt import Connection, ConnectOptions, OnState
from iotnotify.properties import Properties, check_payload_format, check_properties
from iotnotify.send import publish_one
from iotnotify.subscribe import Inbox, subscribe
from iotnotify.topics import check_payload, check_topic


def response_topic_for(keys: TemporaryKeys, given: str | None) -> str:
    """The topic replies come to: the one given, else the keys' private topic, else a UsageError."""
    if given:
        return given
    private = keys.raw.get("privateTopic")
    if isinstance(private, str) and private:
        return private
    raise UsageError("--response-topic is needed: the keys offer no private topic to receive replies on")


@dataclass(frozen=True)
class Request:
    """What `request` sends: to a topic, a payload, with properties (the correlation data among them)."""

    topic: str
    payload: bytes
    qos: int
    properties: Properties


def new_correlation() -> bytes:
    """Random correlation data, printable so that any tool shows it as it is."""
    return os.urandom(8).hex().encode("ascii")


def request(source: KeySource, options: ConnectOptions, topic: str, payload: bytes, qos: int,
            properties: Properties | None, timeout: float | None,
            on_state: OnState | None = None) -> tuple[Connection, Iterator[Message]]:
    """Subscribe to the response topic, publish the request there with its correlation data, and
    return (the connection, the replies whose correlation data match, as they come, for `timeout` s)."""
    check_topic(topic, aws=False)
    keys = source.get()
    check_topic(topic, keys.aws_rules)
    check_publish(keys, topic)
    given = properties or Properties()
    response_topic = response_topic_for(keys, given.response_topic)
    sent = replace(given, response_topic=response_topic,
                   correlation_data=given.correlation_data if given.correlation_data is not None else new_correlation())
    check_properties(sent, keys.aws_rules)
    check_payload(len(payload), keys.aws_rules)
    check_payload_format(sent, payload)
    connection, inbox = subscribe(source, options, [response_topic], qos, on_state=on_state)
    try:
        publish_one(connection, topic, payload, qos, sent)
    except BaseException:
        connection.disconnect()
        raise
    return connection, replies(inbox, sent.correlation_data, timeout)


def replies(inbox: Inbox, correlation: bytes | None, timeout: float | None) -> Iterator[Message]:
    """The messages in `inbox` that carry `correlation` (others are someone else's replies)."""
    for message in inbox.messages(timeout):
        if message.properties is not None and message.properties.correlation_data == correlation:
            yield message


@dataclass(frozen=True)
class Answer:
    """How one request went: its topic, the command's exit code (None: did not finish in time), its
    stderr's last line, and why the response could not be sent (None: it was)."""

    topic: str
    exit_code: int | None
    stderr: str
    failure: str | None = None


OnAnswer = Callable[[Answer], None]
OnSkipped = Callable[[Message, str], None]


class Responder:
    """Answers requests: runs `command` with the payload on stdin and publishes its stdout to the
    request's response topic with the request's correlation data (and a user property `error` when
    the command failed), `parallel` at a time."""

    def __init__(self, connection: Connection, command: list[str], parallel: int, command_timeout: float | None,
                 on_answer: OnAnswer) -> None:
        self.connection = connection
        self.command = command
        self.command_timeout = command_timeout
        self.on_answer = on_answer
        self._slots = threading.Semaphore(parallel)
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="iotnotify-respond")

    def submit(self, message: Message) -> None:
        """Answer `message` when a slot is free (waits for one: requests beyond `parallel` wait in the inbox)."""
        self._slots.acquire()
        self._pool.submit(self._answer, message)

    def close(self, wait: bool = True) -> None:
        """Wait for the requests being answered (or not), then stop."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

    def _answer(self, message: Message) -> None:
        try:
            self.on_answer(self._run(message))
        finally:
            self._slots.release()

    def _run(self, message: Message) -> Answer:
        properties = message.properties or Properties()
        env = {**os.environ, "IOTNOTIFY_REQUEST_TOPIC": message.topic}
        try:
            done = subprocess.run(self.command, input=message.payload, capture_output=True, env=env,  # noqa: S603
                                  timeout=self.command_timeout, check=False)
            code: int | None = done.returncode
            output, errors = done.stdout, done.stderr.decode("utf-8", "replace").strip()
        except subprocess.TimeoutExpired as e:
            code, output, errors = None, e.stdout or b"", f"did not finish within {self.command_timeout:g} s"
        except OSError as e:
            code, output, errors = 127, b"", f"cannot run {self.command[0]}: {e.strerror}"
        last = errors.splitlines()[-1] if errors else ""
        failed = code != 0
        error_value = (f"exit {code}" if code is not None else "timeout") + (f": {last}" if last else "")
        reply = Properties(user_properties=(("error", error_value),) if failed else (),
                           correlation_data=properties.correlation_data)
        failure = None
        try:
            response_topic = properties.response_topic or ""
            check_topic(response_topic, self.connection.aws)
            check_payload(len(output), self.connection.aws)
            publish_one(self.connection, response_topic, output, message.qos, reply)
        except (UsageError, Refused, DeliveryError) as e:
            failure = str(e)
        return Answer(message.topic, code, last, failure)


def serve(inbox: Inbox, responder: Responder, count: int | None, on_skipped: OnSkipped) -> int:
    """Hand each request in `inbox` to `responder` (a message with no response topic cannot be
    answered: `on_skipped` hears of it), until `count` were handed over; how many were."""
    handled = 0
    for message in inbox.messages():
        if message.properties is None or not message.properties.response_topic:
            on_skipped(message, "it has no response topic")
            continue
        responder.submit(message)
        handled += 1
        if count is not None and handled >= count:
            break
    return handled
