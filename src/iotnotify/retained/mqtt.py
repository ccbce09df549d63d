"""Retained messages over MQTT: find those under a filter (what the broker sends a new subscriber)
and clear them (an empty retained message in each one's place). `aws.py` does the same
through AWS IoT's API for `--aws`."""

from __future__ import annotations

from iotnotify.errors import UsageError
from iotnotify.keys import KeySource
from iotnotify.messages import Message
from iotnotify.mqtt import ConnectOptions, Session
from iotnotify.send import publish_one
from iotnotify.subscribe import stream, subscribe


def find(source: KeySource, options: ConnectOptions, topic_filter: str) -> tuple[Session, list[Message]]:
    """Connect, subscribe to `topic_filter` and return (the connection, the retained messages the
    broker sent, empty ones left out: they are no retained message). Under AWS IoT Core's rules a
    wildcard filter is refused: AWS sends retained messages only to a filter that is their topic."""
    keys = source.get()
    if keys.aws_rules and ("+" in topic_filter or "#" in topic_filter):
        raise UsageError(f"{topic_filter!r} has a wildcard, and AWS IoT Core sends a retained message only to a "
                         "subscription to its exact topic: use --aws (AWS IoT's ListRetainedMessages) or name each topic")
    connection, inbox = subscribe(source, options, [topic_filter], 1)
    try:
        found = [m for m in stream(inbox, retained="only") if m.payload]
    except BaseException:
        connection.disconnect()
        raise
    finally:
        inbox.stop()  # the live messages that follow are not ours: none waits for room in awscrt's thread
    return connection, found


def clear(connection: Session, topics: list[str]) -> None:
    """Publish an empty retained message to each topic (the broker then forgets what it retained);
    Refused or DeliveryError at the first the broker does not take."""
    for topic in topics:
        publish_one(connection, topic, b"", 1, None, retain=True)


class MqttRetained:
    """Retained messages over one MQTT connection, made by the first `find`."""

    def __init__(self, source: KeySource, options: ConnectOptions) -> None:
        self.source = source
        self.options = options
        self.connection: Session | None = None

    def find(self, topic_filter: str) -> list[Message]:
        """The retained messages under `topic_filter` (see `find` above)."""
        self.connection, found = find(self.source, self.options, topic_filter)
        return found

    def get(self, topic: str) -> Message | None:
        """The retained message of `topic`, if any."""
        found = self.find(topic)
        return found[0] if found else None

    def clear(self, topics: list[str]) -> None:
        if self.connection is not None:
            clear(self.connection, topics)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.disconnect()
