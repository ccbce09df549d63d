"""Request and response over MQTT 5 (as mosquitto_rr): `request` publishes with a response topic and
correlation data and waits for the replies that carry it back (respond.py answers requests)."""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from iotnotify.errors import UsageError
from iotnotify.inbox import Inbox
from iotnotify.keys import KeySource, TemporaryKeys
from iotnotify.messages import Message
from iotnotify.mqtt import ConnectOptions, OnState, Session
from iotnotify.properties import Properties, check_payload_format, check_properties, with_message_id
from iotnotify.send import publish_one, publishable
from iotnotify.subscribe import subscribe
from iotnotify.topics import check_payload

if TYPE_CHECKING:
    from iotnotify.signing import Signer, Verifier


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
            on_state: OnState | None = None, signer: Signer | None = None,
            verifier: Verifier | None = None) -> tuple[Session, Generator[Message, None, None]]:
    """Subscribe to the response topic, publish the request there with its correlation data (signed
    by `signer`), and return (the connection, the replies whose correlation data match and, with a
    `verifier`, that a trusted responder signed for this request, as they come, for `timeout` s)."""
    keys = publishable(source, topic, properties)
    given = properties or Properties()
    response_topic = response_topic_for(keys, given.response_topic)
    sent = replace(given, response_topic=response_topic,
                   correlation_data=given.correlation_data if given.correlation_data is not None else new_correlation())
    check_properties(sent, keys.aws_rules)
    check_payload(len(payload), keys.aws_rules)
    check_payload_format(sent, payload)
    sent = with_message_id(sent, keys.aws_rules) or sent  # (MQTT 5 only, as request is): respond --dedupe
    if signer is not None:
        sent = signer.sign(topic, payload, sent, keys.aws_rules)
    if verifier is not None:  # only replies signed for this very request: respond --sign's
        from iotnotify.signing import request_digest

        verifier.reply_to = request_digest(topic, payload, sent)
    connection, inbox = subscribe(source, options, [response_topic], qos, on_state=on_state)
    try:
        publish_one(connection, topic, payload, qos, sent)
    except BaseException:
        connection.disconnect()
        raise
    return connection, replies(inbox, sent.correlation_data, timeout, verifier)


def replies(inbox: Inbox, correlation: bytes | None, timeout: float | None,
            verifier: Verifier | None = None) -> Generator[Message, None, None]:
    """The messages in `inbox` that carry `correlation` (others are someone else's replies) and
    that `verifier` takes; closing it stops the inbox (a message waiting for room in awscrt's
    thread gives up)."""
    try:
        for message in inbox.messages(timeout):
            if message.properties is not None and message.properties.correlation_data == correlation and \
                    (verifier is None or verifier.admits(message)):
                yield message
    finally:
        inbox.stop()
