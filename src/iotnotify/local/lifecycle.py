"""AWS IoT Core's lifecycle events, published by the local stack as AWS publishes them.

When a client connects, disconnects, subscribes or unsubscribes, AWS IoT Core publishes a JSON
message to `$aws/events/presence/connected/CLIENTID`, `.../presence/disconnected/CLIENTID`,
`$aws/events/subscriptions/subscribed/CLIENTID` or `.../unsubscribed/CLIENTID` (Developer Guide,
"Lifecycle events"): clientId, timestamp (ms), eventType, sessionIdentifier, principalIdentifier,
versionNumber (one per connection, the same in its connect and disconnect events), and for a
connect ipAddress, for a disconnect clientInitiatedDisconnect and disconnectReason, for a
subscription the topics. Client ids holding '#' or '+' get none. A client receives them only if
its policy allows (iot:Subscribe and iot:Receive on `$aws/events/...`: the endpoint's
IOTNOTIFY_LIFECYCLE_EVENTS), which the gateway asks as for any message.

Here: `thingName` is never set (the stack has no registry), `ipAddress` is the loopback the stack
listens on, `principalIdentifier` is the keys' access key id, and the session identifier is new
for each connection. Events go to Mosquitto over one connection of the stack's own, at QoS 0,
from a bounded queue (the oldest is dropped past QUEUE: AWS promises at least once, not in order).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from iotnotify.local import packets as mqtt
from iotnotify.local.broker_link import BrokerAddress, open_stream

TOPICS = {"connected": "$aws/events/presence/connected/", "disconnected": "$aws/events/presence/disconnected/",
          "subscribed": "$aws/events/subscriptions/subscribed/",
          "unsubscribed": "$aws/events/subscriptions/unsubscribed/"}
LOOPBACK = "127.0.0.1"

# disconnectReason values (Developer Guide, "Lifecycle events": disconnect events)
AUTH_ERROR, CLIENT_ERROR, CLIENT_INITIATED_DISCONNECT = "AUTH_ERROR", "CLIENT_ERROR", "CLIENT_INITIATED_DISCONNECT"
CONNECTION_LOST, DUPLICATE_CLIENTID, MQTT_KEEP_ALIVE_TIMEOUT = "CONNECTION_LOST", "DUPLICATE_CLIENTID", \
    "MQTT_KEEP_ALIVE_TIMEOUT"
SERVER_INITIATED_DISCONNECT, WEBSOCKET_TTL_EXPIRATION = "SERVER_INITIATED_DISCONNECT", "WEBSOCKET_TTL_EXPIRATION"


class Lifecycle:
    """The stack's publisher of lifecycle events: `emit` queues one (on the front's event loop),
    `run` publishes them to the broker until cancelled."""

    QUEUE = 10_000
    RETRY = 1.0  # s before connecting to the broker again

    def __init__(self, broker: BrokerAddress, clock: Callable[[], float] = time.time) -> None:
        self.broker = broker
        self.clock = clock
        self.dropped = 0  # events dropped while the queue was full
        self._queue: deque[bytes] = deque()
        self._versions = 0
        self._wake: asyncio.Event | None = None

    def version(self) -> int:
        """A new connection's versionNumber (increasing, for any client id)."""
        self._versions += 1
        return self._versions

    def emit(self, kind: str, client_id: str, fields: dict[str, Any]) -> None:
        """Queue the `kind` event of `client_id` ('connected', 'disconnected', 'subscribed', 'unsubscribed')."""
        if "#" in client_id or "+" in client_id:  # "Client IDs that contain # or + do not receive lifecycle events"
            return
        payload = {"clientId": client_id, "timestamp": int(self.clock() * 1000), "eventType": kind, **fields}
        if len(self._queue) >= self.QUEUE:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(mqtt.publish(TOPICS[kind] + client_id, json.dumps(payload).encode(), 0, False))
        if self._wake is not None:
            self._wake.set()

    def pending(self) -> list[bytes]:
        """The events queued (PUBLISH packets), for tests."""
        return list(self._queue)

    async def run(self) -> None:
        """Publish queued events over a connection of the stack's own, made again when it breaks."""
        self._wake = asyncio.Event()
        self._wake.set()
        while True:
            try:
                await self._publish_until_broken()
            except (OSError, EOFError):
                await asyncio.sleep(self.RETRY)

    async def _publish_until_broken(self) -> None:
        reader, writer = await open_stream(self.broker)
        drained = asyncio.ensure_future(_discard(reader))
        try:
            writer.write(mqtt.connect(f"iotnotify-lifecycle-{os.urandom(4).hex()}", keep_alive=0))
            assert self._wake is not None  # noqa: S101 - set by run()
            while not drained.done():
                await self._wake.wait()
                self._wake.clear()
                while self._queue and not drained.done():  # the broker gone: kept for the next connection
                    writer.write(self._queue[0])
                    self._queue.popleft()
                await writer.drain()
            raise EOFError("the broker closed the connection")
        finally:
            drained.cancel()
            writer.close()


async def _discard(reader: asyncio.StreamReader) -> None:
    """Read (and drop) what the broker sends: its CONNACK; return when it closes."""
    while await reader.read(4096):
        pass


class Presence:
    """One connection's lifecycle events: `connected` once the broker accepted it, `subscribed`
    and `unsubscribed` as it goes, and `ended` once, with `reason` if the gateway set one (else
    what ended it: the client's side or the broker's)."""

    def __init__(self, events: Lifecycle, principal: str) -> None:
        self.events = events
        self.principal = principal
        self.client_id: str | None = None  # once connected
        self.reason: str | None = None  # why the connection ends, when the gateway knows
        self._common: dict[str, Any] = {}

    def connected(self, client_id: str) -> None:
        self.client_id = client_id
        self._common = {"sessionIdentifier": str(uuid.uuid4()), "principalIdentifier": self.principal}
        self._version = self.events.version()
        self.events.emit("connected", client_id, {**self._common, "ipAddress": LOOPBACK,
                                                  "versionNumber": self._version})

    def subscribed(self, topics: list[str]) -> None:
        if self.client_id is not None and topics:
            self.events.emit("subscribed", self.client_id, {**self._common, "topics": topics})

    def unsubscribed(self, topics: list[str]) -> None:
        if self.client_id is not None and topics:
            self.events.emit("unsubscribed", self.client_id, {**self._common, "topics": topics})

    def end(self, reason: str) -> None:
        """The connection ends for `reason` (the first one given counts)."""
        self.reason = self.reason or reason

    def ended(self, by_broker: bool) -> None:
        """The connection ended: its disconnected event, once."""
        if self.client_id is None:
            return
        reason = self.reason or (SERVER_INITIATED_DISCONNECT if by_broker else CONNECTION_LOST)
        self.events.emit("disconnected", self.client_id, {
            **self._common, "clientInitiatedDisconnect": reason == CLIENT_INITIATED_DISCONNECT,
            "disconnectReason": reason, "versionNumber": self._version})
        self.client_id = None
