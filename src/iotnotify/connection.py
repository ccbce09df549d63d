"""The MQTT connection: awsiotsdk's MQTT 5 client or MQTT 3.1.1 connection over SigV4-signed wss."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from iotnotify.errors import ConnectError, DeliveryError, IotNotifyError, KeysRefused
from iotnotify.keys import KeySource, TemporaryKeys
from iotnotify.messages import Message
from iotnotify.nodelay import set_nodelay
from iotnotify.topics import is_aws_host

OnMessage = Callable[[Message], None]
OnDone = Callable[[bool], None]
OnState = Callable[[str, int], None]  # state (connecting, connected, reconnecting, stopped), attempt

REFUSED = ("AWS_ERROR_HTTP_WEBSOCKET_UPGRADE_FAILURE", "AWS_IO_SOCKET_CLOSED", "AWS_ERROR_HTTP_CONNECTION_CLOSED")
NODELAY_POLL = (0.0005, 0.02)  # s between looks for the new socket, doubling (Connection._nodelay_early)
TLS_PROBE_AFTER = 1.5  # s: awscrt reports TLS failures only after a long delay; diagnose sooner


@dataclass(frozen=True)
class ConnectOptions:
    """How to connect, beyond what the keys say."""

    protocol: str = "5"
    client_id: str | None = None
    ca_file: str | None = None
    connect_timeout: float = 20.0
    keep_alive: int = 60
    min_reconnect_delay: float = 1.0  # s, doubled (with jitter) per failed attempt...
    max_reconnect_delay: float = 30.0  # ...up to this
    session: str | None = None  # a persistent session: its name is the client id
    session_expiry: int = 3600  # s the broker keeps a persistent session while the client is away


def client_id_for(keys: TemporaryKeys) -> str:
    """A client id of this process's own: below the keys' `clientId` when they name one (keys shared
    through the cache must not make processes take over each other's connection), else random."""
    owner = keys.raw.get("clientId")
    if isinstance(owner, str) and owner:
        return f"{owner}-{os.urandom(4).hex()}"
    return "iotnotify-" + os.urandom(6).hex()


class Connection:
    """A connected MQTT client whatever the protocol: connect, subscribe, publish, disconnect."""

    def __init__(self, source: KeySource, keys: TemporaryKeys, options: ConnectOptions,
                 on_message: OnMessage | None = None, on_state: OnState | None = None) -> None:
        from awscrt import auth

        self.source = source
        self.keys = keys
        self.options = options
        self.client_id = options.client_id or options.session or client_id_for(keys)
        self.aws = is_aws_host(keys.host)
        self.on_message = on_message
        self.on_state = on_state or (lambda _state, _attempt: None)
        self.key_error: IotNotifyError | None = None
        self.subscriptions: list[tuple[list[str], int]] = []  # to subscribe again after a reconnection
        self.credentials = auth.AwsCredentialsProvider.new_delegate(self._credentials)

    def _credentials(self):  # type: ignore[no-untyped-def]
        """Called by awscrt at each (re)connection: keys in hand if fresh, else fetched anew."""
        from awscrt import auth

        try:
            keys = self.source.get()
        except IotNotifyError as e:
            self.key_error = e
            raise
        self.key_error = None
        return auth.AwsCredentials(keys.access_key, keys.secret_key, keys.session_token or None)

    def builder_args(self) -> dict[str, object]:
        """The awsiotsdk builder arguments both protocols share: where, who, and how to sign."""
        return dict(endpoint=self.keys.host, port=self.keys.port, region=self.keys.region,
                    credentials_provider=self.credentials, client_id=self.client_id,
                    ca_filepath=self.options.ca_file, enable_metrics_collection=self.aws)

    def _nodelay_early(self, done: threading.Event, limit: float) -> None:
        """While the first connection is being made, set TCP_NODELAY on its socket as soon as it
        exists: otherwise Nagle holds the WebSocket upgrade behind TLS's last small records until
        the server's delayed ACK (40 ms of every `send`, measured)."""
        deadline, pause = time.monotonic() + limit, NODELAY_POLL[0]
        while time.monotonic() < deadline and not set_nodelay(self.keys.port):
            if done.wait(pause):
                return
            pause = min(pause * 2, NODELAY_POLL[1])  # soon on loopback, then gently while a far broker answers

    def _on_socket(self) -> None:
        """Called at each connection success: no Nagle delay on small messages (see nodelay)."""
        set_nodelay(self.keys.port)

    @property
    def where(self) -> str:
        """host:port of the broker, for messages."""
        return f"{self.keys.host}:{self.keys.port}"

    def _wait_connected(self, done: threading.Event, outcome: Callable[[], BaseException | None]) -> None:
        """Wait for the first connection outcome; diagnose a TLS failure early; raise ConnectError."""
        start = time.monotonic()
        self._nodelay_early(done, TLS_PROBE_AFTER)
        if not done.wait(max(TLS_PROBE_AFTER - (time.monotonic() - start), 0)):
            probe_tls(self.keys.host, self.keys.port, self.options.ca_file)
            if not done.wait(max(self.options.connect_timeout - TLS_PROBE_AFTER, 0)):
                raise ConnectError(f"no answer from broker {self.where} within "
                                   f"{self.options.connect_timeout:g} s")
        error = outcome()
        if error is not None:
            if self.key_error is not None:
                raise self.key_error
            raise classify(error, self.where)

    def connect(self) -> None:
        raise NotImplementedError

    def subscribe(self, filters: list[str], qos: int, timeout: float = 20.0) -> None:
        raise NotImplementedError

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, on_done: OnDone) -> None:
        raise NotImplementedError

    def disconnect(self, timeout: float = 5.0) -> None:
        raise NotImplementedError


def classify(error: BaseException, where: str) -> ConnectError:
    """Turn an awscrt connection error into a one-line ConnectError that says what failed."""
    name = getattr(error, "name", "") or type(error).__name__
    if name.startswith("AWS_IO_TLS") or "TLS" in name:
        return ConnectError(f"TLS failure with broker {where} ({name}): check --ca-file")
    if name in ("AWS_IO_SOCKET_CONNECTION_REFUSED", "AWS_IO_SOCKET_TIMEOUT", "AWS_IO_DNS_INVALID_NAME",
                "AWS_IO_DNS_QUERY_FAILED", "AWS_IO_SOCKET_NO_ROUTE_TO_HOST", "AWS_IO_SOCKET_NETWORK_DOWN",
                "AWS_IO_DNS_NO_ADDRESS_FOR_HOST"):
        return ConnectError(f"broker {where} is unreachable ({name})")
    if name in REFUSED:
        return KeysRefused(f"broker {where} refused the MQTT WebSocket connection ({name}): "
                            "keys expired or not accepted, or not an MQTT-over-WebSocket endpoint")
    return ConnectError(f"cannot connect to broker {where}: {name or error}")


def probe_tls(host: str, port: int, ca_file: str | None, timeout: float = 5.0) -> None:
    """Raise ConnectError if a TLS handshake with host:port fails certificate checks."""
    import socket
    import ssl

    context = ssl.create_default_context(cafile=ca_file)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=host):
                return
    except ssl.SSLCertVerificationError as e:
        raise ConnectError(f"TLS failure with broker {host}:{port}: {e.verify_message}: "
                           "check --ca-file") from None
    except ssl.SSLError as e:
        raise ConnectError(f"TLS failure with broker {host}:{port}: {e.reason or e}") from None
    except OSError:
        return  # not a TLS problem; the client reports what it sees


def open_connection(source: KeySource, options: ConnectOptions, on_message: OnMessage | None = None,
                    on_state: OnState | None = None) -> Connection:
    """Get keys, build the client for the chosen protocol and connect; raise our errors."""
    keys = source.get()
    if options.ca_file is not None:
        import os

        if not os.path.isfile(options.ca_file):
            raise ConnectError(f"CA file {options.ca_file} does not exist")
    if options.protocol == "3.1.1":
        from iotnotify.mqtt311 import Mqtt311Connection as Impl
    else:
        from iotnotify.mqtt5 import Mqtt5Connection as Impl  # type: ignore[assignment]
    connection = Impl(source, keys, options, on_message, on_state)
    try:
        connection.connect()
    except KeysRefused:
        if source.fetches:  # keys fetched just now and refused: nothing better to try
            raise
        # keys from the cache that the broker refuses (revoked, or a restarted local stack): fetch
        # new ones and try once more
        source.invalidate()
        connection = Impl(source, source.get(), options, on_message, on_state)
        connection.connect()
    return connection


def check_granted(filters: list[str], granted: list[int | None]) -> None:
    """Raise DeliveryError naming the first filter the broker refused (a code of 0x80 or more)."""
    for topic_filter, code in zip(filters, granted):
        if code is None or int(code) >= 0x80:
            raise DeliveryError(f"broker refused the subscription to {topic_filter!r}")


def future_ok(future: Future) -> bool:
    """Whether an awscrt operation future completed without an exception."""
    return future.exception() is None
