"""The MQTT 3.1.1 transport: awsiotsdk's mqtt connection over SigV4-signed WebSocket (the session signs).

MQTT 3.1.1 has no reason codes: AWS IoT Core refuses a connect or a publish by closing the
connection. The client tells that from a lost network as well as the protocol allows: the broker
closed the connection cleanly (AWS_ERROR_MQTT_UNEXPECTED_HANGUP) before the CONNACK; or right after
a publish, and took the reconnection at once (a broker that went away would not); or again and
again soon after each reconnection (another client taking the same id).
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import Future
from typing import Any

from awscrt import mqtt
from awsiot import mqtt_connection_builder

from iotnotify import limits
from iotnotify.errors import ConnectError, DeliveryError, Refused, UsageError
from iotnotify.keys.allowance import describe_client
from iotnotify.messages import Message
from iotnotify.mqtt.outcome import ACKED, CLOSED, LOST, MQTT311_FAILURE, OnDone
from iotnotify.mqtt.session import Session
from iotnotify.mqtt.transport import Answer, guarded
from iotnotify.properties import Properties
from iotnotify.trace import log

HANGUP = "AWS_ERROR_MQTT_UNEXPECTED_HANGUP"  # the broker closed the connection, no network error
CANCELLED = "AWS_ERROR_MQTT_CANCELLED_FOR_CLEAN_SESSION"  # a QoS 1 publish lost with the connection
SHORT_LIVED = 10.0  # s: a connection closed by the broker sooner than this after it was made...
FLAPS = 3  # ...this many times in a row: the broker will not have it (a takeover, or a refusal)
SOON = 2.0  # s: a publish lost this soon after it was sent may be the reason the connection closed...
MQTT311_PING_TIMEOUT_MS = 3000  # awscrt.mqtt.Connection's default wait for a PINGRESP (shorter than the keep-alive)
BACK_WITHIN = 2.0  # s: ...if the reconnection came within this (beyond the least delay): the broker is there


class Mqtt311Transport:
    """awscrt.mqtt.Connection (MQTT 3.1.1): a clean session, or a persistent one with --session."""

    scheme, has_client_id, paced, start_blocks, steady = "wss", True, True, True, False

    def __init__(self, session: Session) -> None:
        self.session = session
        self.options = session.options
        self._suspects: list[OnDone] = []  # publishes lost right after they were sent: refused, or not?
        self._suspects_lock = threading.Lock()
        self._hangup_at = 0.0  # when the broker last closed the connection cleanly
        self._connected_at = time.monotonic()
        self._flaps = 0
        self._tried_again = False  # a first CONNECT closed unanswered was tried once more (AWS's connect rate)
        self.connection = self._build()

    def _build(self) -> mqtt.Connection:
        options = self.options
        connection = mqtt_connection_builder.websockets_with_default_aws_signing(
            **self.session.signing_args(), clean_session=not options.session, keep_alive_secs=options.keep_alive,
            ping_timeout_ms=min(MQTT311_PING_TIMEOUT_MS, options.keep_alive * 500) or MQTT311_PING_TIMEOUT_MS,
            will=self._will(),
            reconnect_min_timeout_secs=max(int(self.session.min_reconnect_delay), 1),
            reconnect_max_timeout_secs=max(int(options.max_reconnect_delay), 1),
            on_connection_interrupted=guarded(self._interrupted), on_connection_resumed=guarded(self._resumed))
        if self.session.on_message is not None:
            connection.on_message(guarded(self._received))
        return connection

    def _will(self) -> mqtt.Will | None:
        will = self.options.will
        if will is None:
            return None
        if will.delay is not None:
            raise UsageError("--will-delay needs MQTT 5: --protocol 3.1.1 has no will delay")
        return mqtt.Will(will.topic, mqtt.QoS(will.qos), will.payload, will.retain)

    def start(self, persist: bool = False) -> None:
        """Connect (awscrt's connection makes a first connection once; after it, it reconnects by
        itself); with `persist`, try again with backoff until connected or no longer the session's."""
        session = self.session
        session.attempting()
        log.debug("connecting to wss://%s/mqtt as client id %s (MQTT 3.1.1, keep-alive %d s): %sTLS, WebSocket "
                  "upgrade, CONNECT", session.where, session.client_id, self.options.keep_alive,
                  f"CONNECT through proxy {session.proxy.name}, " if session.proxy else "")
        if persist:
            self._connect_until_connected()
            return
        self._connected_at = time.monotonic()
        self.connection.connect().add_done_callback(self._first)

    def _first(self, future: Future[Any]) -> None:
        session = self.session
        error = future.exception()
        if session.closing or not session.current(self):  # given up meanwhile (a timeout): not wanted now
            if error is None:
                self.connection.disconnect()
            return
        if error is None:
            log.debug("CONNACK after %.0f ms: session present %s", (time.monotonic() - self._connected_at) * 1000,
                      future.result().get("session_present"))
            self._connected_at = time.monotonic()
            session.connected()
            session.first_outcome(None)
        elif session.aws and getattr(error, "name", "") == HANGUP and not self._tried_again:
            # AWS IoT Core's refusal of a CONNECT, or of one within a second of the last with this client id
            # (MQTT 3.1.1 cannot tell which): once more after that second before taking it for a refusal
            self._tried_again = True
            log.debug("closed before the CONNACK: once more in %g s (AWS takes one CONNECT a second per client id)",
                      limits.CONNECT_INTERVAL)
            retry = threading.Timer(limits.CONNECT_INTERVAL, self._connect_again)
            retry.daemon = True
            retry.start()
        elif session.aws and getattr(error, "name", "") == HANGUP:  # AWS IoT Core's refusal of a CONNECT
            session.first_outcome(Refused(
                f"broker {session.where} closed the connection before accepting it (MQTT 3.1.1 cannot say why; "
                f"AWS IoT Core does so when the keys may not connect as client id {session.client_id!r})"
                f"{describe_client(session.keys)}"))
        else:
            session.first_outcome(error)

    def _connect_again(self) -> None:
        if not self.session.closing and self.session.current(self):
            self._connected_at = time.monotonic()
            try:
                self.connection.connect().add_done_callback(self._first)
            except Exception as e:  # (in a timer's thread: said to the session, not lost)
                self.session.first_outcome(e)

    def _connect_until_connected(self) -> None:
        session, delay = self.session, self.session.min_reconnect_delay
        while session.fatal is None and not session.closing and session.current(self):
            try:
                self.connection.connect().result(self.options.connect_timeout)
                break
            except Exception:
                time.sleep(delay)
                delay = min(delay * 2, self.options.max_reconnect_delay)
        else:
            return
        if session.closing or not session.current(self):  # the session closed (or went on) meanwhile
            self.connection.disconnect()
            return
        session.first_outcome(None)  # a renewal while the first connection was made: this is it
        self._resumed(self.connection, None, False)

    def _interrupted(self, connection: mqtt.Connection, error: Exception, **_: object) -> None:
        log.debug("connection lost: %s; reconnecting", getattr(error, "name", error))
        now = time.monotonic()
        if getattr(error, "name", "") == HANGUP:
            self._hangup_at = now
            self._flaps = self._flaps + 1 if now - self._connected_at < SHORT_LIVED else 1
            if self._flaps >= FLAPS:
                self.session.fail(ConnectError(
                    f"broker {self.session.where} closed the connection {FLAPS} times in a row soon after it was "
                    "made (MQTT 3.1.1 cannot say why; AWS IoT Core does so when another client connects as "
                    f"{self.session.client_id!r} and takes over, or when the keys do not allow what was sent)"))
                connection.disconnect()
                return
        self.session.lost()

    def _judge(self, refused: bool) -> None:
        """Settle the publishes lost when the connection closed: refused (CLOSED) if the broker took
        the reconnection at once, else lost with the network (LOST)."""
        with self._suspects_lock:
            suspects, self._suspects = self._suspects, []
        for on_done in suspects:
            on_done(CLOSED if refused else LOST)

    def _resumed(self, connection: mqtt.Connection, return_code: object, session_present: bool, **_: object) -> None:
        log.debug("reconnected: CONNACK %s, session present %s", return_code, session_present)
        self._judge(time.monotonic() - self._hangup_at < self.session.min_reconnect_delay + BACK_WITHIN)
        self._connected_at = time.monotonic()
        if not session_present:  # a clean session after a reconnection: subscribe again, a filter a packet
            for filters, qos in self.session.subscriptions:  # (awscrt's resubscribe_existing_topics sends them
                for topic_filter in filters:  # all in one SUBSCRIBE, and AWS IoT Core closes the connection over 8)
                    self.connection.subscribe(topic_filter, mqtt.QoS(qos))
        self.session.connected()

    def _received(self, topic: str, payload: bytes, dup: bool, qos: mqtt.QoS, retain: bool,
                  **_kwargs: object) -> None:
        on_message = self.session.on_message
        if on_message is not None:  # registered only when it is
            on_message(Message(topic, bytes(payload), int(qos), bool(retain)))

    def subscribe(self, filters: list[str], qos: int) -> Answer:
        # the Python binding has one filter per SUBSCRIBE: send them all, then collect the SUBACKs
        futures = [self.connection.subscribe(f, mqtt.QoS(qos))[0] for f in filters]
        where = self.session.where

        def answer(timeout: float) -> list[int]:
            deadline, codes = time.monotonic() + timeout, []
            for future in futures:
                try:
                    codes.append(int(future.result(max(deadline - time.monotonic(), 0))["qos"]))
                except TimeoutError:
                    raise
                except mqtt.SubscribeError:  # a SUBACK with 0x80: refused
                    codes.append(MQTT311_FAILURE)
                except Exception as e:
                    raise DeliveryError(f"broker {where} did not acknowledge the subscription: {e}") from None
            return codes

        return answer

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, on_done: OnDone,
                properties: Properties | None) -> None:
        if properties:
            raise UsageError("MQTT 3.1.1 has no message properties: use --protocol 5")
        sent_at = time.monotonic()

        def completed(future: Future[Any]) -> None:
            error = future.exception()
            if error is None:
                on_done(ACKED)
            elif getattr(error, "name", "") == CANCELLED and time.monotonic() - sent_at < SOON:
                with self._suspects_lock:  # how AWS refuses a publish in MQTT 3.1.1? _resumed will say
                    self._suspects.append(on_done)
                    first = len(self._suspects) == 1
                if first:  # no reconnection in time: the network, not a refusal
                    wait = self.session.min_reconnect_delay + BACK_WITHIN + 1
                    timer = threading.Timer(wait, self._judge, (False,))
                    timer.daemon = True
                    timer.start()
            else:
                on_done(LOST)

        future, _packet_id = self.connection.publish(topic, payload, mqtt.QoS(qos), retain)
        future.add_done_callback(completed)

    def halt(self) -> None:
        self.connection.disconnect()

    def stop(self, timeout: float) -> None:
        log.debug("DISCONNECT to the broker")
        with contextlib.suppress(Exception):  # gone already, or not in time: either way, done with it
            self.connection.disconnect().result(timeout)
        self.session.stopped()
