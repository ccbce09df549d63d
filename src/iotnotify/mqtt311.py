"""The MQTT 3.1.1 side of Connection: awsiotsdk's mqtt connection over SigV4-signed WebSocket."""

from __future__ import annotations

import threading

from awscrt import mqtt
from awsiot import mqtt_connection_builder

from iotnotify import threadstate
from iotnotify.connection import Connection, OnDone, check_granted, future_ok
from iotnotify.errors import DeliveryError
from iotnotify.messages import Message


class Mqtt311Connection(Connection):
    """awscrt.mqtt.Connection (MQTT 3.1.1): a clean session, or a persistent one with --session."""

    def connect(self) -> None:
        self.connection = mqtt_connection_builder.websockets_with_default_aws_signing(
            **self.builder_args(), clean_session=not self.options.session, keep_alive_secs=self.options.keep_alive,
            reconnect_min_timeout_secs=max(int(self.options.min_reconnect_delay), 1),
            reconnect_max_timeout_secs=max(int(self.options.max_reconnect_delay), 1),
            on_connection_interrupted=lambda connection, error, **_: self.on_state("reconnecting", 0),
            on_connection_resumed=self._resumed)
        if self.on_message is not None:
            self.connection.on_message(self._received)
        self.on_state("connecting", 1)
        future = self.connection.connect()
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        self._wait_connected(done, future.exception)
        self._on_socket()
        self.on_state("connected", 0)

    def _resumed(self, connection: mqtt.Connection, return_code: object, session_present: bool, **_: object) -> None:
        self._on_socket()
        if not session_present:  # a clean session after a reconnection: subscribe again
            connection.resubscribe_existing_topics()
        self.on_state("connected", 0)

    def _received(self, topic: str, payload: bytes, dup: bool, qos: mqtt.QoS, retain: bool,
                  **_kwargs: object) -> None:
        threadstate.keep()
        self.on_message(Message(topic, bytes(payload), int(qos), bool(retain)))  # type: ignore[misc]

    def subscribe(self, filters: list[str], qos: int, timeout: float = 20.0) -> None:
        # the Python binding has one filter per SUBSCRIBE: send them all, then collect the SUBACKs
        futures = [self.connection.subscribe(f, mqtt.QoS(qos))[0] for f in filters]
        try:
            granted = [future.result(timeout)["qos"] for future in futures]
        except Exception as e:  # noqa: BLE001 - any failure here is the broker not acknowledging
            raise DeliveryError(f"broker {self.where} did not acknowledge the subscription: {e}") from None
        check_granted(filters, granted)

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, on_done: OnDone) -> None:
        future, _packet_id = self.connection.publish(topic, payload, mqtt.QoS(qos), retain)
        future.add_done_callback(lambda f: (threadstate.keep(), on_done(future_ok(f))))

    def disconnect(self, timeout: float = 5.0) -> None:
        try:
            self.connection.disconnect().result(timeout)
        except Exception:  # noqa: BLE001 - already gone is as good as disconnected
            pass
        self.on_state("stopped", 0)
