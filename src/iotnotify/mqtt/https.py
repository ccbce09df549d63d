"""Publishing over HTTPS: AWS IoT Core's `POST /topics/TOPIC?qos=1`, SigV4-signed (service iotdata).

A transport that only publishes: one request per message on one kept-alive HTTPS connection
(awscrt's HTTP client and signer, as the MQTT clients use). A one-off message costs TLS and one
request, two round trips, where MQTT over WebSocket costs TLS, the WebSocket upgrade, CONNECT
(awscrt waits for the CONNACK) and PUBLISH, four: `send` takes this way for a single message when
nothing in it needs MQTT (bench/README.md has the figures). The HTTP status is read as the
broker's answer: 200 acknowledged, 401 not authorized, 413 too large, 429 throttled, 400 and the
like refused, 5xx or a lost connection not acknowledged; 403 (the keys or their signature not
accepted) as MQTT's refused upgrade: cached keys are replaced once (Session.keys_refused), else
the send ends (exit 5).
"""

from __future__ import annotations

import io
import json
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from iotnotify.errors import HttpsUnsupported, KeysRefused, UsageError
from iotnotify.mqtt.outcome import ACKED, LOST, NOT_AUTHORIZED, OnDone, Outcome, refused
from iotnotify.properties import Properties
from iotnotify.proxy import crt_options
from iotnotify.trace import log

if TYPE_CHECKING:
    from concurrent.futures import Future

    from iotnotify.mqtt.session import Session
    from iotnotify.mqtt.transport import Answer

SERVICE = "iotdata"  # the data plane's signing name
PACKET_TOO_LARGE, QUOTA_EXCEEDED, IMPLEMENTATION_SPECIFIC = 0x95, 0x97, 0x83
CODES = {401: NOT_AUTHORIZED, 413: PACKET_TOO_LARGE, 429: QUOTA_EXCEEDED}
"""HTTP statuses as the MQTT reason codes that say the same; other 4xx: IMPLEMENTATION_SPECIFIC."""
UNSUPPORTED = (404, 405, 426, 501)
"""What a server that is not an AWS IoT data endpoint answers a POST /topics/... (as does a 400
without AWS's JSON error): a send that chose HTTPS by itself then goes over MQTT."""


def path_for(topic: str, qos: int, retain: bool) -> str:
    """The request target of a publish: the topic percent-encoded (its slashes too), QoS, retain."""
    return f"/topics/{quote(topic, safe='')}?qos={qos}" + ("&retain=true" if retain else "")


class HttpsTransport:
    """Publishes each message as an HTTPS request; no subscriptions, no client id, no will."""

    # AWS's per-connection publish rate is MQTT's; HTTPS requests have an account's
    scheme, has_client_id, paced, start_blocks, steady = "https", False, False, False, False

    def __init__(self, session: Session) -> None:
        self.session = session
        self.keys = session.keys
        self.http: Any = None
        self._answered = False  # a response came on this connection

    def start(self, persist: bool = False) -> None:
        """Open the HTTPS connection (TCP, TLS); the session hears how it went and diagnoses a failure
        as for MQTT (a TLS probe for certificate failures, the proxy named)."""
        from awscrt import http
        from awscrt import io as crt_io

        session = self.session
        started = time.monotonic()
        session.attempting()
        log.debug("connecting to https://%s: %sTLS", session.where,
                  f"CONNECT through proxy {session.proxy.name}, " if session.proxy else "")
        tls = crt_io.TlsContextOptions()
        if session.options.ca_file:
            tls.override_default_trust_store_from_path(None, session.options.ca_file)
        connection_options = crt_io.ClientTlsContext(tls).new_connection_options()
        connection_options.set_server_name(self.keys.host)
        future = http.HttpClientConnection.new(
            host_name=self.keys.host, port=self.keys.port, tls_connection_options=connection_options,
            proxy_options=crt_options(session.proxy) if session.proxy is not None else None)

        def opened(future: Future[Any]) -> None:
            if future.exception() is None and session.closing:  # given up meanwhile (a timeout)
                future.result().close()
                return
            if future.exception() is None:
                self.http = future.result()
                log.debug("HTTPS connection to %s (TLS) in %.0f ms", session.where,
                          (time.monotonic() - started) * 1000)
                session.connected()  # TCP_NODELAY: else Nagle holds the request's body behind its headers
            session.first_outcome(future.exception())

        future.add_done_callback(opened)

    def subscribe(self, filters: list[str], qos: int) -> Answer:
        raise UsageError("HTTPS publishes only: subscribing needs MQTT")

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, on_done: OnDone,
                properties: Properties | None) -> None:
        """Sign and send the request; `on_done` gets ACKED or why not, from awscrt's thread."""
        if properties:
            raise UsageError("message properties need MQTT: send with --via mqtt")
        self._request(topic, payload, qos, retain, on_done, retried=False)

    def _request(self, topic: str, payload: bytes, qos: int, retain: bool, on_done: OnDone, retried: bool) -> None:
        from awscrt import auth, http

        target = path_for(topic, qos, retain)
        host = self.keys.host if self.keys.port == 443 else f"{self.keys.host}:{self.keys.port}"
        request = http.HttpRequest("POST", target, http.HttpHeaders(
            [("Host", host), ("Content-Length", str(len(payload))), ("Content-Type", "application/octet-stream")]),
            io.BytesIO(payload))
        config = auth.AwsSigningConfig(
            algorithm=auth.AwsSigningAlgorithm.V4, signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
            credentials_provider=self.session.credentials, region=self.keys.region, service=SERVICE)
        started = time.monotonic()

        def signed(future: Future[Any]) -> None:
            if future.exception() is not None:  # no keys to sign with (the keys endpoint failed)
                log.debug("HTTPS publish to %r not signed: %s", topic, self.session.key_error or future.exception())
                on_done(LOST)
                return
            self._send(request, topic, started, answered)

        def answered(status: int, body: bytes) -> None:
            if status == 0 and not self._answered:
                # the first request's connection closed without an answer: a server that is no
                # AWS IoT data endpoint refusing the POST (websockets does so); over MQTT then
                self.session.fail(HttpsUnsupported(
                    f"broker {self.session.where} closed the connection without answering an HTTPS publish "
                    "(not an AWS IoT data endpoint?): send with --via mqtt"))
                on_done(LOST)
                return
            self._answered = True
            if status == 403:
                if not retried and self.session.keys_refused():  # cached ones (revoked, a restarted stack)
                    log.debug("HTTPS publish refused the cached keys (403): fetching new ones")
                    self._request(topic, payload, qos, retain, on_done, retried=True)
                    return
                self.session.fail(KeysRefused(f"broker {self.session.where} refused the keys (HTTP 403"
                                              + (f": {message})" if (message := _message(body)) else ")")
                                              + ": keys expired or not accepted"))
                on_done(LOST)
                return
            on_done(self._code(status, body))

        auth.aws_sign_request(request, config).add_done_callback(signed)

    def _send(self, request: Any, topic: str, started: float, answered: Any) -> None:
        """Send a signed request; `answered(status, body)` once the response ended (status 0: lost)."""
        response: dict[str, Any] = {"status": 0, "body": bytearray()}

        def on_response(http_stream: Any, status_code: int, headers: Any, **_kwargs: Any) -> None:
            response["status"] = status_code

        def on_body(http_stream: Any, chunk: bytes, **_kwargs: Any) -> None:
            response["body"] += chunk

        def completed(future: Future[Any]) -> None:
            status = 0 if future.exception() is not None else response["status"]
            log.debug("HTTPS publish to %r: %s in %.0f ms", topic, status or f"lost ({future.exception()})",
                      (time.monotonic() - started) * 1000)
            answered(status, bytes(response["body"]))

        try:
            stream = self.http.request(request, on_response=on_response, on_body=on_body)
            stream.activate()
        except Exception as e:  # the connection is gone
            log.debug("HTTPS publish to %r not sent: %s", topic, e)
            answered(0, b"")
            return
        stream.completion_future.add_done_callback(completed)

    def _code(self, status: int, body: bytes) -> Outcome:
        """The outcome an HTTP status stands for: acknowledged, refused with the reason code the status
        means (the server's message as the reason string), or lost (no answer, a server error: worth
        trying again)."""
        if status == 200:
            return ACKED
        message = _message(body)
        if status in UNSUPPORTED or (status == 400 and not message):
            self.session.fail(HttpsUnsupported(f"broker {self.session.where} takes no HTTPS publish "
                                               f"(HTTP {status}): send with --via mqtt"))
            return LOST
        if status == 0 or status >= 500:
            return LOST
        return refused(CODES.get(status, IMPLEMENTATION_SPECIFIC), f"HTTP {status}" + (f": {message}" if message else ""))

    def halt(self) -> None:
        if self.http is not None:
            self.http.close()
            self.http = None

    def stop(self, timeout: float) -> None:
        if self.http is not None:
            closed = threading.Event()
            self.http.shutdown_future.add_done_callback(lambda _f: closed.set())
            self.http.close()
            closed.wait(timeout)
            self.http = None


def _message(body: bytes) -> str:
    """The message of AWS's JSON error body ({"message": ...}), if it has one."""
    try:
        found = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    message = found.get("message") if isinstance(found, dict) else None
    return message if isinstance(message, str) else ""
