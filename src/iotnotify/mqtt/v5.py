"""The MQTT 5 side of Connection: awsiotsdk's mqtt5 client over SigV4-signed WebSocket."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from awscrt import mqtt5
from awsiot import mqtt5_client_builder

from iotnotify import trace
from iotnotify.crt import publish as direct
from iotnotify.crt import receive, threadstate
from iotnotify.errors import ConnectError, DeliveryError, IotNotifyError, Refused
from iotnotify.messages import Message
from iotnotify.mqtt.base import (
    ACKED,
    NOT_ACKED,
    NOT_AUTHORIZED,
    REFUSED,
    SESSION_TAKEN_OVER,
    Connection,
    OnDone,
    State,
    reason,
    taken_over,
)
from iotnotify.properties import Properties
from iotnotify.trace import log

TRANSIENT = {0x80, 0x88, 0x89, 0x8B, 0x8D, 0x98, 0x9C, 0x9D, 0x9F, 0xA0}
"""DISCONNECT reason codes after which reconnecting may work (the server going away, busy, a keep-alive
missed...); any other reason code means the broker will refuse the same again: the connection fails."""


Entry = tuple[str, bytes, int, bool, OnDone, "Properties | None"]  # a QoS 1 message until acknowledged


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


class Mqtt5Connection(Connection):
    """awscrt.mqtt5.Client with AWS IoT Core flow control on for AWS endpoints only."""

    def _guarded(self, handler: Callable[[Any], None]) -> Callable[[Any], None]:
        """`handler`, called only while the client it is given to is the current one (see renew)."""
        generation = self.generation

        def call(data: Any) -> None:
            if generation == self.generation:
                handler(data)

        return call

    def _build(self) -> mqtt5.Client:
        if self.on_message is None or self.options.manual_ack:  # the lean core acknowledges on arrival
            return self._make()
        return receive.build(self._make, self._lean_receiver())

    def _lean_receiver(self) -> receive.Lean:
        """What gets each message from receive.py's lean core: a Message for on_message."""
        generation, on_message, keep, now = self.generation, self.on_message, threadstate.keep, time.time

        def received(topic: str, payload: bytes, qos: int, retain: bool, properties: Properties | None) -> None:
            keep()
            if generation == self.generation and on_message is not None:
                on_message(Message(topic, payload or b"", qos, retain, now(), properties))

        return received

    def _make(self) -> mqtt5.Client:
        validation = mqtt5.ExtendedValidationAndFlowControlOptions
        guarded = self._guarded
        return mqtt5_client_builder.websockets_with_default_aws_signing(
            **self.builder_args(),
            keep_alive_interval_sec=self.options.keep_alive,
            ping_timeout_ms=ping_timeout_ms(self.options.keep_alive),
            connect_options=self._connect_packet(),
            min_reconnect_delay_ms=int(self.options.min_reconnect_delay * 1000),
            max_reconnect_delay_ms=int(self.options.max_reconnect_delay * 1000),
            session_behavior=(mqtt5.ClientSessionBehaviorType.REJOIN_ALWAYS if self.options.session
                              else mqtt5.ClientSessionBehaviorType.CLEAN),
            session_expiry_interval_sec=self.options.session_expiry if self.options.session else None,
            receive_maximum=self.options.receive_maximum,
            extended_validation_and_flow_control_options=(
                validation.AWS_IOT_CORE_DEFAULTS if self.aws else validation.NONE),
            on_publish_received=guarded(self._received) if self.on_message else None,
            on_lifecycle_attempting_connect=guarded(self._attempting),
            on_lifecycle_connection_success=guarded(self._connected),
            on_lifecycle_connection_failure=guarded(self._failed),
            on_lifecycle_disconnection=guarded(self._lost),
            on_lifecycle_stopped=guarded(self._stop_done),
        )

    def _connect_packet(self) -> mqtt5.ConnectPacket | None:
        """The CONNECT's will, if any (the builder fills in the rest)."""
        will = self.options.will
        if will is None:
            return None
        return mqtt5.ConnectPacket(will=mqtt5.PublishPacket(topic=will.topic, payload=will.payload,
                                                            qos=mqtt5.QoS(will.qos), retain=will.retain),
                                   will_delay_interval_sec=will.delay)

    def connect(self) -> None:
        self.last_topic: str | None = None
        # QoS 1 messages not yet acknowledged, to publish again if the client is replaced (renew):
        # only where that can happen, under AWS rules with a client id of the keys'
        self._track = self.aws and not (self.options.client_id or self.options.session)
        self._inflight: dict[int, Entry] = {}
        self._inflight_lock = threading.Lock()
        self._tokens = itertools.count()
        self._attempts = 0
        self._stopping = False
        self._outcome = threading.Event()
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        self._trace = trace.on()
        self._attempt_started = time.monotonic()
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
        self._attempt_started = time.monotonic()
        log.debug("%s wss://%s/mqtt as client id %s (MQTT 5, keep-alive %d s%s): %sTLS, WebSocket upgrade, CONNECT",
                  "reconnecting to" if self._outcome.is_set() else "connecting to", self.where, self.client_id,
                  self.options.keep_alive, f", attempt {self._attempts}" if self._attempts > 1 else "",
                  f"CONNECT through proxy {self.proxy.name}, " if self.proxy else "")
        if self._outcome.is_set():
            self.on_state(State.RECONNECTING, self._attempts)
        else:
            self.on_state(State.CONNECTING, self._attempts)

    def _connected(self, data: mqtt5.LifecycleConnectSuccessData) -> None:
        self.negotiated = data.negotiated_settings  # what the broker settled (its keep-alive among them)
        if trace.on():
            log.debug("CONNACK after %.0f ms: %s", (time.monotonic() - self._attempt_started) * 1000,
                      _connack_text(data.connack_packet, data.negotiated_settings))
        self._attempts = 0
        self._on_socket()
        if self._outcome.is_set() and not data.negotiated_settings.rejoined_session:
            for filters, qos in self.subscriptions:  # a clean session after a reconnection: subscribe again
                self.client.subscribe(mqtt5.SubscribePacket(
                    subscriptions=[mqtt5.Subscription(f, mqtt5.QoS(qos)) for f in filters]))
        self.on_state(State.CONNECTED, 0)
        self._outcome.set()

    def _lost(self, data: mqtt5.LifecycleDisconnectData) -> None:
        packet = data.disconnect_packet
        code = int(packet.reason_code) if packet is not None and packet.reason_code is not None else 0
        if packet is not None:
            log.debug("DISCONNECT from the broker: %s", reason(code, packet.reason_string))
        elif not self._stopping:
            log.debug("connection lost: %s", getattr(data.exception, "name", data.exception))
        if code >= 0x80 and code not in TRANSIENT and not self._stopping:
            if code == SESSION_TAKEN_OVER:
                error: IotNotifyError = taken_over(self)
            elif code == NOT_AUTHORIZED:
                what = f"publish to {self.last_topic!r}" if self.last_topic else "do what it asked"
                if packet.reason_string:
                    self.reasons.setdefault(code, packet.reason_string)
                error = Refused(f"broker {self.where} closed the connection: {self.refused_text(what)}")
            else:
                error = DeliveryError(f"broker {self.where} closed the connection: {reason(code, packet.reason_string)}"
                                      + (f" after a publish to {self.last_topic!r}" if self.last_topic else ""))
            if self.options.long_running and code != SESSION_TAKEN_OVER:
                # what one message did (a reply the keys may not send, a packet too large) must not end a
                # command that runs for days: say why, and let the client connect again
                if self.on_dropped is not None:
                    self.on_dropped(error)
                self.on_state(State.RECONNECTING, 0)
                return
            self._stopping = True  # reconnecting would be refused the same way, or take the id back
            self.client.stop()
            self._fail(error)
            return
        if not self._stopping:  # our own disconnect is not a lost connection
            self.on_state(State.RECONNECTING, 0)

    def _stop_done(self, _data: mqtt5.LifecycleStoppedData) -> None:
        self.on_state(State.STOPPED, 0)
        self._stopped.set()

    def _failed(self, data: mqtt5.LifecycleConnectFailureData) -> None:
        connack = data.connack_packet
        if connack is not None and connack.reason_code is not None:
            log.debug("CONNACK: %s", reason(int(connack.reason_code), connack.reason_string))
        else:
            log.debug("connection failed: %s", getattr(data.exception, "name", data.exception))
        if self._outcome.is_set():  # a reconnection attempt; the client keeps trying...
            if getattr(data.exception, "name", "") in REFUSED:
                self.source.invalidate()  # ...with new keys, if the broker refused these
            return
        if connack is not None and connack.reason_code is not None and int(connack.reason_code) >= 0x80:
            code = int(connack.reason_code)
            if code == NOT_AUTHORIZED:
                self._error = Refused(f"broker {self.where} refused the connection: "
                                      f"{self.refused_connect_text(connack.reason_string)}")
            else:
                self._error = ConnectError(f"broker {self.where} refused the connection: "
                                           f"{reason(code, connack.reason_string)}")
        else:
            self._error = data.exception
        self._outcome.set()

    def _received(self, data: mqtt5.PublishReceivedData) -> None:
        threadstate.keep()
        packet = data.publish_packet
        ack = None
        if self.options.manual_ack and data.acquire_publish_acknowledgement_control is not None:  # QoS 1
            ack = self._acknowledger(data.acquire_publish_acknowledgement_control())
        if self.on_message is not None:  # registered only when it is
            self.on_message(Message(packet.topic, bytes(packet.payload or b""), int(packet.qos),
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

    def subscribe(self, filters: list[str], qos: int, timeout: float = 20.0) -> list[int]:
        packet = mqtt5.SubscribePacket(subscriptions=[mqtt5.Subscription(f, mqtt5.QoS(qos)) for f in filters])
        try:
            suback = self.client.subscribe(packet).result(timeout)
        except Exception as e:
            raise DeliveryError(f"broker {self.where} did not acknowledge the subscription: {e}") from None
        return self.granted(filters, [int(code) for code in suback.reason_codes], qos)

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, on_done: OnDone,
                properties: Properties | None = None) -> None:
        self._pace(topic, payload)
        self.last_topic = topic
        if self._trace:
            on_done = self._traced(topic, qos, on_done)
        if qos and self._track:
            on_done = self._tracked((topic, payload, qos, retain, on_done, properties))
        self._send(topic, payload, qos, retain, on_done, properties)

    def _traced(self, topic: str, qos: int, on_done: OnDone) -> OnDone:
        """`on_done`, after a line of trace for the message's PUBACK (or its failure)."""
        def done(code: int) -> None:
            if code == NOT_ACKED:
                log.debug("PUBLISH to %r: not acknowledged (the connection was lost)", topic)
            elif qos:
                log.debug("PUBACK for %r: %s", topic, reason(max(code, 0), self.reasons.get(code)))
            on_done(code)

        return done

    def _tracked(self, entry: Entry) -> OnDone:
        """Remember a QoS 1 message until it completes; its completion on a replaced client is ignored."""
        token = next(self._tokens)
        with self._inflight_lock:
            self._inflight[token] = entry

        def done(code: int) -> None:
            with self._inflight_lock:
                if self._inflight.pop(token, None) is None:
                    return  # published again on the client that replaced this one
            entry[4](code)

        return done

    def renew(self) -> None:
        """A new client, for the client id the new keys allow: the old one is stopped, and the QoS 1
        messages it still held are published again on the new one (at least once, as always)."""
        with self._inflight_lock:
            resend, self._inflight = list(self._inflight.values()), {}
        old, self.client = self.client, self._build()
        old.stop()
        self.client.start()
        for topic, payload, qos, retain, on_done, properties in resend:
            self._send(topic, payload, qos, retain, self._tracked((topic, payload, qos, retain, on_done, properties)),
                       properties)

    def _send(self, topic: str, payload: bytes, qos: int, retain: bool, on_done: OnDone,
              properties: Properties | None = None) -> None:
        if direct.ACTIVE and not properties:
            def completed(error: int, _qos: int, code: int | None, text: str | None = None, *_: object) -> None:
                threadstate.keep()
                if code is not None and code >= 0x80 and text:
                    self.reasons.setdefault(code, text)
                on_done(NOT_ACKED if error else code if code is not None and code >= 0x80 else ACKED)

            direct.publish(self.client, topic, payload, qos, retain, completed)
            return
        future = self.client.publish(mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS(qos),
                                                         retain=retain, **publish_properties(properties)))

        def completed_future(future: Future[Any]) -> None:
            threadstate.keep()
            code = _published(future)
            if code >= 0x80 and (text := future.result().puback.reason_string):
                self.reasons.setdefault(code, text)
            on_done(code)

        future.add_done_callback(completed_future)

    def disconnect(self, timeout: float = 5.0) -> None:
        log.debug("DISCONNECT to the broker")
        self._stopping = self.closing = True
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
             f"retain {'available' if settings.retain_available else 'not available'}",
             f"client id {settings.client_id}"]
    return ", ".join(words)


def _published(future: Future[Any]) -> int:
    """ACKED if the publish completed with no PUBACK or a success one; the PUBACK's failure code; or NOT_ACKED."""
    if future.exception() is not None:
        return NOT_ACKED
    puback = future.result().puback
    code = 0 if puback is None or puback.reason_code is None else int(puback.reason_code)
    return code if code >= 0x80 else ACKED
