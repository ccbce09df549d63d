"""The MQTT 5 transport: awsiotsdk's mqtt5 client over SigV4-signed WebSocket (the session signs)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from awscrt import mqtt5
from awsiot import mqtt5_client_builder

from iotnotify import trace
from iotnotify.errors import ConnectError, DeliveryError, Refused
from iotnotify.messages import Message
from iotnotify.mqtt.diagnose import UPGRADE_REFUSED
from iotnotify.mqtt.outcome import (
    ACKED,
    CONNECTION_RATE_EXCEEDED,
    LOST,
    NOT_AUTHORIZED,
    OnDone,
    Outcome,
    reason,
    refused,
)
from iotnotify.mqtt.session import Session
from iotnotify.mqtt.transport import Answer, guarded
from iotnotify.properties import Properties
from iotnotify.trace import log


def publish_properties(properties: Properties | None) -> dict[str, Any]:
    """PublishPacket's keyword arguments for `properties`."""
    if not properties:
        return {}
    return {
        "user_properties": [mqtt5.UserProperty(key, value) for key, value in properties.user_properties] or None,
        "content_type": properties.content_type,
        "response_topic": properties.response_topic,
        "correlation_data_bytes": properties.correlation_data,
        "message_expiry_interval_sec": properties.message_expiry,
        "payload_format_indicator": None if properties.payload_format is None else (
            mqtt5.PayloadFormatIndicator.AWS_MQTT5_PFI_UTF8 if properties.payload_format == "utf8"
            else mqtt5.PayloadFormatIndicator.AWS_MQTT5_PFI_BYTES),
    }


def received_properties(packet: mqtt5.PublishPacket) -> Properties | None:
    """The properties of a received PUBLISH, None if it has none (most messages: kept cheap)."""
    correlation = packet.correlation_data_bytes
    if not (packet.user_properties or packet.content_type is not None or packet.response_topic is not None
            or correlation is not None or packet.message_expiry_interval_sec is not None
            or packet.payload_format_indicator is not None):
        return None
    indicator = packet.payload_format_indicator
    return Properties(
        user_properties=tuple((p.name, p.value) for p in packet.user_properties or ()),
        content_type=packet.content_type, response_topic=packet.response_topic,
        correlation_data=None if correlation is None else bytes(correlation),
        message_expiry=packet.message_expiry_interval_sec,
        payload_format=None if indicator is None else ("utf8" if int(indicator) == 1 else "bytes"))


MQTT5_PING_TIMEOUT_MS = 30_000  # aws-c-mqtt's default wait for a PINGRESP in MQTT 5 (AWS_MQTT5_CLIENT_DEFAULT_PING_TIMEOUT_MS)


def ping_timeout_ms(keep_alive: int) -> int | None:
    """The client's wait for a PINGRESP: awscrt wants the keep-alive a second longer than it, so
    for a keep-alive of 30 s or less (AWS's least is 30), a second less; else its default (None)."""
    if 0 < keep_alive * 1000 <= MQTT5_PING_TIMEOUT_MS:
        return max((keep_alive - 1) * 1000, 500)
    return None


class Mqtt5Transport:
    """awscrt.mqtt5.Client with AWS IoT Core flow control on for AWS endpoints only."""

    scheme, has_client_id, paced, start_blocks, steady = "wss", True, True, False, True

    def __init__(self, session: Session) -> None:
        self.session = session
        self.options = session.options
        self._stopped = threading.Event()
        self._started = False
        self._attempt_started = time.monotonic()
        self.client = self._make()

    def _make(self) -> mqtt5.Client:
        validation = mqtt5.ExtendedValidationAndFlowControlOptions
        options = self.options
        return mqtt5_client_builder.websockets_with_default_aws_signing(
            **self.session.signing_args(),
            keep_alive_interval_sec=options.keep_alive,
            ping_timeout_ms=ping_timeout_ms(options.keep_alive),
            connect_options=self._connect_packet(),
            **self._reconnect_delays(),
            # not min_connected_time_to_reset_reconnect_delay_ms: awscrt's binding stores it as the
            # min_reconnect_delay_ms (aws-crt-python source/mqtt5_client.c, to v0.36 at least), so the
            # backoff is reset only after aws-c-mqtt's 30 s connected: a connection ended sooner (a
            # flaky network, --max-connection-duration under 30 s) doubles the wait, up to the maximum
            # awscrt's jitter may wait less than the minimum (aws-c-mqtt's full jitter: 0 to it), which
            # AWS IoT Core's one CONNECT a second per client id forbids
            retry_jitter_mode=mqtt5.ExponentialBackoffJitterMode.NONE if self.session.aws else
            mqtt5.ExponentialBackoffJitterMode.DEFAULT,
            session_behavior=(mqtt5.ClientSessionBehaviorType.REJOIN_ALWAYS if options.session
                              else mqtt5.ClientSessionBehaviorType.CLEAN),
            session_expiry_interval_sec=options.session_expiry if options.session else None,
            receive_maximum=options.receive_maximum,
            extended_validation_and_flow_control_options=(
                validation.AWS_IOT_CORE_DEFAULTS if self.session.aws else validation.NONE),
            on_publish_received=guarded(self._received) if self.session.on_message else None,
            on_lifecycle_attempting_connect=guarded(self._attempting),
            on_lifecycle_connection_success=guarded(self._connected),
            on_lifecycle_connection_failure=guarded(self._failed),
            on_lifecycle_disconnection=guarded(self._lost),
            on_lifecycle_stopped=guarded(self._stop_done),
        )

    def _reconnect_delays(self) -> dict[str, int]:
        """The wait awscrt's client makes before each reconnection attempt, doubled per failure from the minimum up to
        the maximum: the options'; under AWS's rules, the session's plan (retry.py) for this
        transport: an attempt each interval (both the interval), or backing off from twice it."""
        least, retry = self.session.min_reconnect_delay, self.session.retry
        if retry is not None and not retry.patient:
            return {"min_reconnect_delay_ms": int(least * 1000), "max_reconnect_delay_ms": int(least * 1000)}
        if retry is not None:
            least = retry.backoff
        return {"min_reconnect_delay_ms": int(least * 1000),
                "max_reconnect_delay_ms": int(max(self.options.max_reconnect_delay, least) * 1000)}

    def _connect_packet(self) -> mqtt5.ConnectPacket | None:
        """The CONNECT's will, if any (the builder fills in the rest)."""
        will = self.options.will
        if will is None:
            return None
        return mqtt5.ConnectPacket(will=mqtt5.PublishPacket(topic=will.topic, payload=will.payload,
                                                            qos=mqtt5.QoS(will.qos), retain=will.retain),
                                   will_delay_interval_sec=will.delay)

    def start(self, persist: bool = False) -> None:
        """Start the client: it connects, and connects again whenever the connection goes, by itself."""
        self._started = True
        self.client.start()

    def _attempting(self, _data: mqtt5.LifecycleAttemptingConnectData) -> None:
        session = self.session
        self._attempt_started = time.monotonic()
        attempt = session.attempting()
        log.debug("%s wss://%s/mqtt as client id %s (MQTT 5, keep-alive %d s%s): %sTLS, WebSocket upgrade, CONNECT",
                  "reconnecting to" if session.connected_once else "connecting to", session.where, session.client_id,
                  self.options.keep_alive, f", attempt {attempt}" if attempt > 1 else "",
                  f"CONNECT through proxy {session.proxy.name}, " if session.proxy else "")

    def _connected(self, data: mqtt5.LifecycleConnectSuccessData) -> None:
        self.negotiated = data.negotiated_settings  # what the broker settled (its keep-alive among them)
        if trace.on():
            log.debug("CONNACK after %.0f ms: %s", (time.monotonic() - self._attempt_started) * 1000,
                      _connack_text(data.connack_packet, data.negotiated_settings))
        if self.options.session:  # what the broker keeps: the CONNACK's, if it said one, else what was asked
            self.session.session_kept(data.negotiated_settings.session_expiry_interval_sec)
        again = self.session.connected_once
        if again and not data.negotiated_settings.rejoined_session:
            for filters, qos in self.session.subscriptions:  # a clean session after a reconnection: subscribe again
                self.client.subscribe(mqtt5.SubscribePacket(
                    subscriptions=[mqtt5.Subscription(f, mqtt5.QoS(qos)) for f in filters]))
        self.session.connected()
        self.session.first_outcome(None)

    def _lost(self, data: mqtt5.LifecycleDisconnectData) -> None:
        packet = data.disconnect_packet
        code = int(packet.reason_code) if packet is not None and packet.reason_code is not None else 0
        if packet is not None:
            log.debug("DISCONNECT from the broker: %s", reason(code, packet.reason_string))
        elif not self.session.closing:
            log.debug("connection lost: %s", getattr(data.exception, "name", data.exception))
        self.session.lost(code, packet.reason_string if packet is not None else None)

    def _stop_done(self, _data: mqtt5.LifecycleStoppedData) -> None:
        self.session.stopped()
        self._stopped.set()

    def _failed(self, data: mqtt5.LifecycleConnectFailureData) -> None:
        connack, session = data.connack_packet, self.session
        if connack is not None and connack.reason_code is not None:
            log.debug("CONNACK: %s", reason(int(connack.reason_code), connack.reason_string))
        else:
            log.debug("connection failed: %s", getattr(data.exception, "name", data.exception))
        if session.connected_once:  # a reconnection attempt; the client keeps trying
            code = int(connack.reason_code) if connack is not None and connack.reason_code is not None else 0
            session.reconnect_failed(getattr(data.exception, "name", "") == UPGRADE_REFUSED, code)
            return
        if connack is not None and connack.reason_code is not None and int(connack.reason_code) >= 0x80:
            code = int(connack.reason_code)
            if code == CONNECTION_RATE_EXCEEDED:  # another CONNECT with this client id within the second:
                log.debug("connection rate exceeded: trying again")  # the client does, after its delay (>= 1 s)
                return
            if code == NOT_AUTHORIZED:
                session.first_outcome(Refused(f"broker {session.where} refused the connection: "
                                              f"{session.refused_connect_text(connack.reason_string)}"))
            else:
                session.first_outcome(ConnectError(f"broker {session.where} refused the connection: "
                                                   f"{reason(code, connack.reason_string)}"))
        else:
            session.first_outcome(data.exception)

    def _received(self, data: mqtt5.PublishReceivedData) -> None:
        packet = data.publish_packet
        ack = None
        if self.options.manual_ack and data.acquire_publish_acknowledgement_control is not None:  # QoS 1
            ack = self._acknowledger(data.acquire_publish_acknowledgement_control())
        on_message = self.session.on_message
        if on_message is not None:  # registered only when it is
            on_message(Message(packet.topic, bytes(packet.payload or b""), int(packet.qos),
                               bool(packet.retain), properties=received_properties(packet), ack=ack))

    def _acknowledger(self, handle: mqtt5.PublishAcknowledgementControlHandle) -> Callable[[], None]:
        """What sends the PUBACK of a message taken with manual acknowledgement (once, when called)."""
        client = self.client

        def ack() -> None:
            try:
                client.invoke_publish_acknowledgement(handle)
            except Exception as e:
                log.debug("PUBACK not sent: %s", getattr(e, "name", e))  # it, or sends it again (a session)

        return ack

    def subscribe(self, filters: list[str], qos: int) -> Answer:
        packet = mqtt5.SubscribePacket(subscriptions=[mqtt5.Subscription(f, mqtt5.QoS(qos)) for f in filters])
        future, where = self.client.subscribe(packet), self.session.where

        def answer(timeout: float) -> list[int]:
            try:
                suback = future.result(timeout)
            except TimeoutError:  # (concurrent.futures' since Python 3.11)
                raise
            except Exception as e:
                raise DeliveryError(f"broker {where} did not acknowledge the subscription: {e}") from None
            return [int(code) for code in suback.reason_codes]

        return answer

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, on_done: OnDone,
                properties: Properties | None) -> None:
        future = self.client.publish(mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS(qos),
                                                         retain=retain, **publish_properties(properties)))

        def completed_future(future: Future[Any]) -> None:
            on_done(_published(future))

        future.add_done_callback(completed_future)

    def halt(self) -> None:
        # a DISCONNECT, where there is a connection: a client replaced while its connection was up
        # (Session.connect_again) goes on under the same id, so its will is no news
        self.client.stop(mqtt5.DisconnectPacket())

    def stop(self, timeout: float) -> None:
        if not self._started:  # a replacement waiting for its planned start (Session._start_at): nothing to end
            self.client.stop()
            return
        log.debug("DISCONNECT to the broker")
        started = time.monotonic()
        self.client.stop(mqtt5.DisconnectPacket())
        self._stopped.wait(timeout)
        log.debug("client stopped after %.0f ms", (time.monotonic() - started) * 1000)


def _connack_text(connack: mqtt5.ConnackPacket | None, settings: mqtt5.NegotiatedSettings) -> str:
    """What the trace says of a CONNACK: its reason, and the broker's maximums as negotiated."""
    code = 0 if connack is None or connack.reason_code is None else int(connack.reason_code)
    words = [reason(code, connack.reason_string if connack is not None else None),
             f"session present {bool(settings.rejoined_session)}",
             f"receive maximum {settings.receive_maximum_from_server}",
             f"maximum packet size {settings.maximum_packet_size_to_server}",
             f"topic alias maximum {settings.topic_alias_maximum_to_server}",
             f"keep-alive {settings.server_keep_alive_sec} s", f"maximum QoS {int(settings.maximum_qos)}",
             f"session expiry {settings.session_expiry_interval_sec} s",
             f"retain {'available' if settings.retain_available else 'not available'}",
             f"client id {settings.client_id}"]
    return ", ".join(words)


def _published(future: Future[Any]) -> Outcome:
    """The outcome of `Client.publish`'s future: acknowledged (no PUBACK, or a success), refused (the
    PUBACK's code and reason string), or lost."""
    if future.exception() is not None:
        return LOST
    puback = future.result().puback
    code = 0 if puback is None or puback.reason_code is None else int(puback.reason_code)
    return refused(code, puback.reason_string) if code >= 0x80 else ACKED
