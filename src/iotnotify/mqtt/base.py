"""The MQTT connection: awsiotsdk's MQTT 5 client or MQTT 3.1.1 connection over SigV4-signed wss."""

from __future__ import annotations

import enum
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from iotnotify import limits
from iotnotify.allowance import check_publish, describe, describe_client
from iotnotify.crt.nodelay import set_nodelay
from iotnotify.errors import (
    ConnectError,
    DeliveryError,
    IotNotifyError,
    KeysRefused,
    Refused,
    TakenOver,
    UsageError,
)
from iotnotify.keys import KeySource, TemporaryKeys
from iotnotify.messages import Message
from iotnotify.properties import Properties
from iotnotify.proxy import Proxy, crt_options, proxy_for, tunnel
from iotnotify.settings import (
    DEFAULT_KEEPALIVE,
    DEFAULT_RECONNECT_DELAY,
    DEFAULT_SESSION_EXPIRY,
    Protocol,
    Settings,
)
from iotnotify.shown import shown
from iotnotify.throttle import Pacer
from iotnotify.topics import MQTT_STRING, check_payload, check_string, check_topic
from iotnotify.trace import log

if TYPE_CHECKING:
    from awscrt import auth

OnMessage = Callable[[Message], None]
OnDone = Callable[[int], None]  # ACKED, an MQTT reason code of 0x80 or more (refused), NOT_ACKED or CLOSED
class State(enum.StrEnum):
    """Where a connection is; OnState hears each change, with the reconnection attempt's number."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"  # disconnect() was called
    FAILED = "failed"  # the broker ended it for good (Connection.fatal says why)


OnState = Callable[[State, int], None]

ACKED, NOT_ACKED, CLOSED = 0, -1, -2  # CLOSED: MQTT 3.1.1, the broker closed the connection right after it
NOT_AUTHORIZED, SESSION_TAKEN_OVER, MQTT311_FAILURE = 0x87, 0x8E, 0x80
REASONS = {  # MQTT 5.0, 2.4 "Reason Code": the codes a broker sends a client
    0x10: "no matching subscribers", 0x80: "unspecified error", 0x81: "malformed packet", 0x82: "protocol error",
    0x83: "implementation specific error", 0x84: "unsupported protocol version", 0x85: "client identifier not valid",
    0x86: "bad user name or password", 0x87: "not authorized", 0x88: "server unavailable", 0x89: "server busy",
    0x8A: "banned", 0x8B: "server shutting down", 0x8C: "bad authentication method", 0x8D: "keep alive timeout",
    0x8E: "session taken over", 0x8F: "topic filter invalid", 0x90: "topic name invalid",
    0x91: "packet identifier in use", 0x93: "receive maximum exceeded", 0x94: "topic alias invalid",
    0x95: "packet too large", 0x96: "message rate too high", 0x97: "quota exceeded", 0x98: "administrative action",
    0x99: "payload format invalid", 0x9A: "retain not supported", 0x9B: "QoS not supported",
    0x9C: "use another server", 0x9D: "server moved", 0x9E: "shared subscriptions not supported",
    0x9F: "connection rate exceeded", 0xA0: "maximum connect time", 0xA1: "subscription identifiers not supported",
    0xA2: "wildcard subscriptions not supported",
}

REFUSED = ("AWS_ERROR_HTTP_WEBSOCKET_UPGRADE_FAILURE", "AWS_IO_SOCKET_CLOSED", "AWS_ERROR_HTTP_CONNECTION_CLOSED")
NODELAY_POLL = (0.0005, 0.02)  # s between looks for the new socket, doubling (Connection._nodelay_early)
TLS_PROBE_AFTER = 1.5  # s: awscrt reports TLS failures only after a long delay; diagnose sooner


@dataclass(frozen=True)
class Will:
    """The message the broker publishes for the client if its connection ends without a DISCONNECT
    (after `delay` seconds, MQTT 5 only, if it has not come back by then)."""

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    delay: int | None = None


@dataclass(frozen=True)
class ConnectOptions:
    """How to connect, beyond what the keys say."""

    protocol: Protocol = Protocol.V5
    client_id: str | None = None
    ca_file: str | None = None
    connect_timeout: float = 20.0
    keep_alive: int = DEFAULT_KEEPALIVE
    min_reconnect_delay: float = DEFAULT_RECONNECT_DELAY[0]  # s, doubled (with jitter) per failed attempt...
    max_reconnect_delay: float = DEFAULT_RECONNECT_DELAY[1]  # ...up to this
    session: str | None = None  # a persistent session: its name is the client id
    session_expiry: int = DEFAULT_SESSION_EXPIRY  # s the broker keeps a persistent session while the client is away
    will: Will | None = None
    proxy: str | None = None  # an http:// proxy URL given by the user (else the environment's, unless NO_PROXY)
    https: bool = False  # publish over HTTPS (mqtt/https.py) instead of connecting with MQTT...
    https_fallback: bool = False  # ...and with MQTT after all if the broker takes no HTTPS publish
    long_running: bool = False  # runs for days: a connection the broker ends is made again (unless taken over)
    receive_maximum: int | None = None  # MQTT 5: QoS 1 messages the broker may have unacknowledged with us
    manual_ack: bool = False  # MQTT 5: a QoS 1 message is acknowledged by its Message.ack(), not on arrival

    @classmethod
    def from_settings(cls, settings: Settings, session: str | None = None,
                      session_expiry: int = DEFAULT_SESSION_EXPIRY,
                      reconnect_delay: tuple[float, float] = DEFAULT_RECONNECT_DELAY,
                      will: Will | None = None, long_running: bool = False) -> ConnectOptions:
        """The options the settings (and, for long-running commands, their session and reconnection
        flags, and a will) ask for."""
        return cls(protocol=Protocol(settings.protocol), client_id=settings.client_id, ca_file=settings.ca_file,
                   keep_alive=settings.keepalive, session=session, session_expiry=session_expiry,
                   min_reconnect_delay=reconnect_delay[0], max_reconnect_delay=reconnect_delay[1], will=will,
                   proxy=settings.proxy, long_running=long_running)


def check_options(keys: TemporaryKeys, options: ConnectOptions) -> None:
    """What the broker would refuse of the options, refused before connecting: under AWS IoT Core's
    rules a keep-alive outside 30-1200 s; a will's topic that breaks the rules or the keys do not allow."""
    for flag, client_id in (("--client-id", options.client_id), ("--session", options.session)):
        if client_id is not None:
            check_client_id(flag, client_id, keys.aws_rules)
    if keys.aws_rules and not limits.KEEP_ALIVE_MIN <= options.keep_alive <= limits.KEEP_ALIVE_MAX:
        raise UsageError(f"--keepalive {options.keep_alive}: AWS IoT Core takes {limits.KEEP_ALIVE_MIN} to "
                         f"{limits.KEEP_ALIVE_MAX} seconds")
    will = options.will
    if will is None:
        return
    try:
        check_topic(will.topic, keys.aws_rules)
        check_payload(len(will.payload), keys.aws_rules)
    except UsageError as e:
        raise UsageError(f"--will-topic: {e}") from None
    try:
        check_publish(keys, will.topic)
    except Refused as e:
        raise Refused(f"{e} (the will)") from None


def check_client_id(flag: str, client_id: str, aws: bool) -> None:
    """UsageError for a client id the broker (or awscrt, before it) would refuse: empty, characters
    MQTT forbids, over AWS IoT Core's 128 bytes (MQTT's 65,535 elsewhere)."""
    limit = limits.MAX_CLIENT_ID_BYTES if aws else MQTT_STRING
    check_string(client_id, flag, limit, f"{'AWS IoT Core' if aws else 'MQTT'}'s {limit}")


def client_id_for(keys: TemporaryKeys) -> str:
    """A client id of this process's own: below the keys' `clientId` when they name one (keys shared
    through the cache must not make processes take over each other's connection), else random."""
    owner = keys.raw.get("clientId")
    if isinstance(owner, str) and owner:
        return f"{owner}-{os.urandom(4).hex()}"
    return "iotnotify-" + os.urandom(6).hex()


def reason(code: int, text: str | None = None) -> str:
    """An MQTT reason code as words, '0x87 not authorized', with the broker's reason string if it
    sent one: '0x97 quota exceeded (too many subscriptions)'."""
    words = f"0x{code:02X} {REASONS.get(code, 'success' if code < 0x80 else 'refused')}"
    return f"{words} ({shown(text)})" if text else words


class Connection:
    """A connected MQTT client whatever the protocol: connect, subscribe, publish, disconnect (also
    as a context manager). Under AWS IoT Core's rules it paces its publishes to AWS's limits."""

    def __init__(self, source: KeySource, keys: TemporaryKeys, options: ConnectOptions,
                 on_message: OnMessage | None = None, on_state: OnState | None = None) -> None:
        from awscrt import auth

        self.source = source
        self.keys = keys
        self.options = options
        self.client_id = options.client_id or options.session or client_id_for(keys)
        self.aws = keys.aws_rules
        self.proxy = proxy_for("wss", keys.host, options.proxy)
        self.pacer = Pacer(limits.PUBLISH_RATE, limits.THROUGHPUT) if self.aws else None
        self.on_message = on_message  # None: no callback for received messages is registered at all
        self.on_state = on_state or (lambda _state, _attempt: None)
        # long-running: hears why the broker ended the connection (which is then made again)
        self.on_dropped: Callable[[IotNotifyError], None] | None = None
        self.key_error: IotNotifyError | None = None
        self.fatal: IotNotifyError | None = None  # why the broker ended the connection for good
        self.reasons: dict[int, str] = {}  # the broker's reason string for each refusal code, the first it sent
        self.subscriptions: list[tuple[list[str], int]] = []  # to subscribe again after a reconnection
        self.generation = 0  # of the underlying client, replaced when new keys need a new client id
        self._renewing = threading.Event()
        self.closing = False  # disconnect() was called: no new client from now on
        self.credentials = auth.AwsCredentialsProvider.new_delegate(self._credentials)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.disconnect()

    def _fail(self, error: IotNotifyError) -> None:
        """The broker ended the connection for a reason that reconnecting cannot mend (refused, taken
        over): remember why, and tell whoever watches the state ('failed')."""
        if self.fatal is None:
            self.fatal = error
            self.on_state(State.FAILED, 0)

    def ready_in(self, size: int) -> float:
        """Seconds until a message of `size` bytes may be published under AWS IoT Core's limits."""
        return self.pacer.delay(size) if self.pacer is not None else 0.0

    def _pace(self, topic: str, payload: bytes) -> None:
        """Wait until the message may go without exceeding AWS's publish rate or throughput."""
        if self.pacer is not None:
            self.pacer.wait(len(payload) + len(topic) + 8)  # + fixed header, length, packet id

    def refused_text(self, action: str, code: int = NOT_AUTHORIZED) -> str:
        """'0x87 not authorized to publish to 'x' (the keys allow topic y)': the end of a refusal,
        with the broker's reason string if it sent one."""
        return f"0x{code:02X} not authorized to {action}{describe(self.keys)}{self._said(code)}"

    def refused_connect_text(self, text: str | None = None) -> str:
        """'0x87 not authorized to connect as client id 'x' (the keys are for client id y...)'."""
        said = f"; the broker said: {shown(text)}" if text else ""
        return f"0x87 not authorized to connect as client id {self.client_id!r}{describe_client(self.keys)}{said}"

    def _said(self, code: int) -> str:
        text = self.reasons.get(code)
        return f"; the broker said: {shown(text)}" if text else ""

    def _credentials(self) -> auth.AwsCredentialsProvider:
        """Called by awscrt at each (re)connection: keys in hand if fresh, else fetched anew."""
        from awscrt import auth

        try:
            keys = self.source.get()
        except IotNotifyError as e:
            self.key_error = e
            raise
        self.key_error = None
        if self.needs_new_id(keys):  # refused under this id: go on as a new client with an id of the new keys
            refused = f"the new keys are for client id {keys.raw.get('clientId')}, not {self.client_id}"
            if not self._renewing.is_set():
                self._renewing.set()
                threading.Thread(target=self._renew_in_background, name="iotnotify-renew", daemon=True).start()
            raise ConnectError(refused)  # this attempt fails; the renewal takes over
        return auth.AwsCredentials(keys.access_key, keys.secret_key, keys.session_token or None)

    def needs_new_id(self, keys: TemporaryKeys) -> bool:
        """Whether `keys` (fetched anew at a reconnection) are for another client id than this
        connection's: our endpoint scopes each set of keys to a client id of its own, and AWS IoT
        Core would refuse the old id. A client id the user chose stays as it is."""
        if self.options.client_id or self.options.session:
            return False
        owner = keys.raw.get("clientId")
        return isinstance(owner, str) and bool(owner) and not self.client_id.startswith(owner + "-")

    def _renew_in_background(self) -> None:
        try:
            if self.fatal is None and not self.closing:
                self.keys = self.source.get()
                self.client_id = client_id_for(self.keys)
                self.generation += 1  # callbacks of the old client are ignored from now on
                self.renew()
        finally:
            self._renewing.clear()

    def renew(self) -> None:
        """Replace the underlying client by one for `self.client_id`, subscribed as the old one was."""
        raise NotImplementedError

    def builder_args(self) -> dict[str, object]:
        """The awsiotsdk builder arguments both protocols share: where, who, and how to sign."""
        args = {"endpoint": self.keys.host, "port": self.keys.port, "region": self.keys.region,
                "credentials_provider": self.credentials, "client_id": self.client_id,
                "ca_filepath": self.options.ca_file,
                # the SDK's version in CONNECT's username is for AWS's SDK statistics; building it
                # imports importlib.metadata and reads the package's metadata: 50-80 ms of a cold send
                "enable_metrics_collection": False}
        if self.proxy is not None:
            args["http_proxy_options"] = crt_options(self.proxy)
        return args

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
            log.debug("no answer after %.1f s: probing TLS with %s", TLS_PROBE_AFTER, self.where)
            probe_tls(self.keys.host, self.keys.port, self.options.ca_file, proxy=self.proxy)
            if not done.wait(max(self.options.connect_timeout - TLS_PROBE_AFTER, 0)):
                raise ConnectError(f"no answer from broker {self.where} within "
                                   f"{self.options.connect_timeout:g} s")
        error = outcome()
        if error is not None:
            if self.key_error is not None:
                raise self.key_error
            if isinstance(error, IotNotifyError):  # already said in our words (a CONNACK's reason)
                raise error
            if self.proxy is not None:
                probe_tls(self.keys.host, self.keys.port, self.options.ca_file, proxy=self.proxy)  # names the proxy
            raise classify(error, self.where)

    def connect(self) -> None:
        raise NotImplementedError

    def subscribe(self, filters: list[str], qos: int, timeout: float = 20.0) -> list[int]:
        """Subscribe; return the SUBACK's code for each filter (0 or 1 granted, 0x80 or more refused)."""
        raise NotImplementedError

    def granted(self, filters: list[str], codes: list[int], qos: int) -> list[int]:
        """Remember the filters a SUBACK granted (to subscribe again after a reconnection); its codes."""
        for topic_filter, code in zip(filters, codes, strict=False):
            log.debug("SUBACK %r: %s", topic_filter, f"granted QoS {code}" if code < 0x80 else reason(code))
        granted = [f for f, code in zip(filters, codes, strict=False) if code < 0x80]
        if granted:
            self.subscriptions.append((granted, qos))
        return codes

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, on_done: OnDone,
                properties: Properties | None = None) -> None:
        """Publish (waiting first if AWS's rate requires), with MQTT 5 `properties` if given;
        `on_done` gets ACKED or why not."""
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


def probe_tls(host: str, port: int, ca_file: str | None, timeout: float = 5.0, proxy: Proxy | None = None) -> None:
    """Raise ConnectError if a TLS handshake with host:port fails certificate checks (through
    `proxy`, which it names if it cannot be reached or refuses the tunnel)."""
    import socket
    import ssl

    from iotnotify.deadline import Deadline

    context = ssl.create_default_context(cafile=ca_file)
    deadline = Deadline(timeout)  # the handshake too: a server may drip it a byte at a time
    try:
        with deadline:
            raw = tunnel(proxy, host, port, timeout) if proxy else socket.create_connection((host, port), timeout)
            with deadline.watch(raw) as sock, context.wrap_socket(sock, server_hostname=host):
                return
    except ssl.SSLCertVerificationError as e:
        raise ConnectError(f"TLS failure with broker {host}:{port}: {shown(e.verify_message)}: "
                           "check --ca-file") from None
    except ssl.SSLError as e:
        if deadline.expired:
            return  # too slow, not a TLS problem: the client reports what it sees
        raise ConnectError(f"TLS failure with broker {host}:{port}: {shown(str(e.reason or e))}") from None
    except OSError:
        return  # not a TLS problem; the client reports what it sees


def refusal(connection: Connection, topic_filter: str, code: int) -> IotNotifyError:
    """The error for a subscription the broker refused: Refused if not authorized (in MQTT 3.1.1,
    where 0x80 is all a SUBACK can say, AWS IoT Core's usual reason), else DeliveryError."""
    if code == NOT_AUTHORIZED or (code == MQTT311_FAILURE and connection.options.protocol == Protocol.V311):
        hedge = " (MQTT 3.1.1 cannot say why; AWS IoT Core refuses so when the keys do not allow it)" \
            if code == MQTT311_FAILURE else ""
        return Refused("broker refused the subscription: "
                       + connection.refused_text(f"subscribe to {topic_filter!r}", code) + hedge)
    return DeliveryError(f"broker refused the subscription to {topic_filter!r}: {reason(code)}")


def taken_over(connection: Connection) -> TakenOver:
    return TakenOver(f"another client connected as {connection.client_id!r} and took over this connection "
                     "(AWS IoT Core allows one connection per client id)")
