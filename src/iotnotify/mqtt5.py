"""The MQTT 5 side of Connection: awsiotsdk's mqtt5 client over SigV4-signed WebSocket."""

from __future__ import annotations

import threading

import _awscrt  # awscrt's native module: see DIRECT_PUBLISH
import awscrt
from awscrt import mqtt5
from awsiot import mqtt5_client_builder

from iotnotify import threadstate
from iotnotify.connection import REFUSED, Connection, OnDone, check_granted
from iotnotify.errors import ConnectError, DeliveryError
from iotnotify.messages import Message


class Mqtt5Connection(Connection):
    """awscrt.mqtt5.Client with AWS IoT Core flow control on for AWS endpoints only."""

    def _build(self) -> mqtt5.Client:
        validation = mqtt5.ExtendedValidationAndFlowControlOptions
        return mqtt5_client_builder.websockets_with_default_aws_signing(
            **self.builder_args(),
            keep_alive_interval_sec=self.options.keep_alive,
            min_reconnect_delay_ms=int(self.options.min_reconnect_delay * 1000),
            max_reconnect_delay_ms=int(self.options.max_reconnect_delay * 1000),
            session_behavior=(mqtt5.ClientSessionBehaviorType.REJOIN_ALWAYS if self.options.session
                              else mqtt5.ClientSessionBehaviorType.CLEAN),
            session_expiry_interval_sec=self.options.session_expiry if self.options.session else None,
            extended_validation_and_flow_control_options=(
                validation.AWS_IOT_CORE_DEFAULTS if self.aws else validation.NONE),
            on_publish_received=self._received if self.on_message else None,
            on_lifecycle_attempting_connect=self._attempting,
            on_lifecycle_connection_success=self._connected,
            on_lifecycle_connection_failure=self._failed,
            on_lifecycle_disconnection=self._lost,
            on_lifecycle_stopped=self._stop_done,
        )

    def connect(self) -> None:
        self._attempts = 0
        self._stopping = False
        self._outcome = threading.Event()
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        self.client = self._build()
        self.client.start()
        try:
            self._wait_connected(self._outcome, lambda: self._error)
        except BaseException:
            self._stopping = True
            self.client.stop()
            raise

    def _attempting(self, _data: mqtt5.LifecycleAttemptingConnectData) -> None:
        self._attempts += 1
        if self._outcome.is_set():
            self.on_state("reconnecting", self._attempts)
        else:
            self.on_state("connecting", self._attempts)

    def _connected(self, data: mqtt5.LifecycleConnectSuccessData) -> None:
        self._attempts = 0
        self._on_socket()
        if self._outcome.is_set() and not data.negotiated_settings.rejoined_session:
            for filters, qos in self.subscriptions:  # a clean session after a reconnection: subscribe again
                self.client.subscribe(mqtt5.SubscribePacket(
                    subscriptions=[mqtt5.Subscription(f, mqtt5.QoS(qos)) for f in filters]))
        self.on_state("connected", 0)
        self._outcome.set()

    def _lost(self, _data: mqtt5.LifecycleDisconnectData) -> None:
        if not self._stopping:  # our own disconnect is not a lost connection
            self.on_state("reconnecting", 0)

    def _stop_done(self, _data: mqtt5.LifecycleStoppedData) -> None:
        self.on_state("stopped", 0)
        self._stopped.set()

    def _failed(self, data: mqtt5.LifecycleConnectFailureData) -> None:
        if self._outcome.is_set():  # a reconnection attempt; the client keeps trying...
            if getattr(data.exception, "name", "") in REFUSED:
                self.source.invalidate()  # ...with new keys, if the broker refused these
            return
        connack = data.connack_packet
        if connack is not None and connack.reason_code is not None and int(connack.reason_code) >= 0x80:
            reason = connack.reason_string or connack.reason_code.name
            self._error = ConnectError(f"broker {self.where} refused the connection: {reason}")
        else:
            self._error = data.exception
        self._outcome.set()

    def _received(self, data: mqtt5.PublishReceivedData) -> None:
        threadstate.keep()
        packet = data.publish_packet
        self.on_message(Message(packet.topic, bytes(packet.payload or b""), int(packet.qos),  # type: ignore[misc]
                                bool(packet.retain)))

    def subscribe(self, filters: list[str], qos: int, timeout: float = 20.0) -> None:
        packet = mqtt5.SubscribePacket(subscriptions=[mqtt5.Subscription(f, mqtt5.QoS(qos)) for f in filters])
        try:
            suback = self.client.subscribe(packet).result(timeout)
        except Exception as e:  # noqa: BLE001 - any failure here is the broker not acknowledging
            raise DeliveryError(f"broker {self.where} did not acknowledge the subscription: {e}") from None
        check_granted(filters, list(suback.reason_codes))
        self.subscriptions.append((filters, qos))

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, on_done: OnDone) -> None:
        if DIRECT_PUBLISH:
            def completed(error: int, _qos: int, reason: int | None, *_: object) -> None:
                threadstate.keep()
                on_done(error == 0 and (reason is None or reason < 0x80))

            _awscrt.mqtt5_client_publish(self.client._binding, qos, payload, retain, topic,
                                         None, None, None, None, None, None, None, completed)
            return
        future = self.client.publish(mqtt5.PublishPacket(topic=topic, payload=payload,
                                                         qos=mqtt5.QoS(qos), retain=retain))
        future.add_done_callback(lambda f: (threadstate.keep(), on_done(_published(f))))

    def disconnect(self, timeout: float = 5.0) -> None:
        self._stopping = True
        self.client.stop(mqtt5.DisconnectPacket())
        self._stopped.wait(timeout)


def _direct_publish_fits(version: str) -> bool:
    """awscrt 0.20 to 0.36 call their binding `mqtt5_client_publish` with the same 13 arguments
    (read in the awscrt/mqtt5.py of 0.20.0, 0.31.0, 0.33.0 and 0.36.1), so we can call it as
    `Client.publish` does."""
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (0, 20) and (major, minor) <= (0, 36)


DIRECT_PUBLISH = _direct_publish_fits(awscrt.__version__)
"""`Client.publish` wraps each publish in a Future, a PublishPacket and, when acknowledged, two
more dataclasses: half of `send -l`'s CPU per message (bench/README.md). Where the binding's
arguments are known, we call it directly with a plain callback; elsewhere `Client.publish`."""


def _published(future) -> bool:  # type: ignore[no-untyped-def]
    """A publish succeeded if it completed and any PUBACK has a success reason code."""
    if future.exception() is not None:
        return False
    puback = future.result().puback
    return puback is None or puback.reason_code is None or int(puback.reason_code) < 0x80
