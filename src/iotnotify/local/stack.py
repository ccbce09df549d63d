"""`iotnotify local`: the broker, the keys endpoint and the `local` profile, started and stopped together."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iotnotify import limits
from iotnotify.errors import LocalStackError, UsageError
from iotnotify.local import DEFAULT_KEYS_PORT, DEFAULT_MQTT_PORT, DEFAULT_TOPICS, DEFAULT_WSS_PORT
from iotnotify.local.account import ConnectRate, StoredSessions
from iotnotify.local.broker import Broker, check_port_free
from iotnotify.local.front import WebSocketFront
from iotnotify.local.gateway import Gateway
from iotnotify.local.grants import COGNITO_SUB, Grants
from iotnotify.local.https_publish import HttpsPublish
from iotnotify.local.iot_policies import Attached, combined
from iotnotify.local.keys_server import LOCAL_ACCOUNT, LOCAL_REGION, KeysServer, LocalIssuer, loopback_origins
from iotnotify.local.lifecycle import Lifecycle, Presence
from iotnotify.local.sigv4 import KnownKeys, UpgradeRefused, verify_signed_request, verify_upgrade
from iotnotify.local.tls import ensure_tls_files
from iotnotify.server.config import DEFAULT_LIFETIME, ConfigInvalid, EndpointConfig
from iotnotify.server.handler import origin_allowed
from iotnotify.server.policy import role_policy

LOOPBACK = "127.0.0.1"
NOTHING: dict[str, Any] = {"Version": "2012-10-17", "Statement": []}  # a policy that allows nothing


@dataclass(frozen=True)
class StackConfig:
    """What `iotnotify local` starts and where, and which of AWS IoT Core's rules it plays by."""

    state_dir: Path
    wss_port: int = DEFAULT_WSS_PORT
    keys_port: int = DEFAULT_KEYS_PORT
    mqtt_port: int = DEFAULT_MQTT_PORT
    lifetime: int = DEFAULT_LIFETIME
    topics: tuple[str, ...] = DEFAULT_TOPICS
    permissive: bool = False  # no policy, limits or throttle: for benchmarks and other tools
    any_client_id: bool = False
    private_prefix: str | None = None
    role_policy: Mapping[str, Any] | None = field(default=None, repr=False)  # default: the SAM template's role's
    cors_origins: tuple[str, ...] = ()  # browser pages that may use the stack besides its own (`*`: any)
    ws_port: int | None = None  # ws:// without TLS on loopback, for the browser page (None: none)
    max_connection_duration: float = limits.MAX_CONNECTION_DURATION  # s: AWS's 24 hours (shorter for a soak)
    max_session_expiry: int = limits.MAX_SESSION_EXPIRY  # s: the account's (AWS's default an hour, at most 7 days)
    shared_subscriptions: bool = True  # keys may subscribe to $share/NAME/FILTER
    lifecycle_events: bool = False  # keys may receive $aws/events/...


class LocalStack:
    """Mosquitto behind a TLS WebSocket front that checks signatures against the keys the local
    endpoint minted and holds each connection to AWS IoT Core's rules, plus that endpoint, all on loopback."""

    def __init__(self, config: StackConfig, log: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.log = log
        self.role_policy = config.role_policy or role_policy(LOCAL_REGION, LOCAL_ACCOUNT)
        self.tls = ensure_tls_files(config.state_dir / "tls")
        self.broker = Broker(config.state_dir / "broker", config.mqtt_port)
        self.issuer = LocalIssuer(LOOPBACK, config.wss_port)
        to_broker = self.broker.unix_socket or config.mqtt_port  # the front's way to Mosquitto
        self.sessions = StoredSessions(config.max_session_expiry)  # persistent sessions whose client left
        publish = HttpsPublish(self._verify_request, self._grants, to_broker, log, self.sessions.published)
        self.lifecycle = Lifecycle(to_broker)  # AWS's lifecycle events, under its rules
        self.front = WebSocketFront(config.wss_port, to_broker, self.tls, admit=self._admit,
                                    plain_port=config.ws_port, publish=publish,
                                    background=() if config.permissive else (self.lifecycle.run,))
        self.keys: KeysServer | None = None
        self.attached = Attached(config.state_dir)  # AWS IoT policies of authenticated Cognito identities
        self.connects = ConnectRate()  # AWS's one CONNECT a second per client id, over all connections
        if not config.permissive:  # the backstop for the ids `sessions` forgets (Mosquitto counts in hours)
            self.broker.session_hours = -(-config.max_session_expiry // 3600)
            self.broker.persistent = True  # AWS IoT Core keeps sessions and retained messages through its restarts
        self.origins = loopback_origins(config.keys_port, config.wss_port) + config.cors_origins
        try:
            self.endpoint = EndpointConfig(topics=config.topics, lifetime=config.lifetime,
                                           private_prefix=config.private_prefix, any_client_id=config.any_client_id,
                                           shared_subscriptions=config.shared_subscriptions,
                                           lifecycle_events=config.lifecycle_events,
                                           cors_origins=self.origins)
        except ConfigInvalid as e:
            raise UsageError(f"--topics or --private-topic-prefix: {e}") from None

    def _admit(self, path: str, headers: Mapping[str, str]) -> Gateway | None:
        """Check the upgrade's signature (UpgradeRefused: 403); then, unless permissive, a Gateway
        holding the connection to the role's policy and the keys' session policy."""
        self._check_origin(headers)
        keys = verify_upgrade(path, headers, self.issuer.lookup)
        grants = self._grants(keys)
        return None if grants is None else Gateway(grants, self.log, max_duration=self.config.max_connection_duration,
                                                   connects=self.connects, sessions=self.sessions,
                                                   presence=Presence(self.lifecycle, keys.access_key))

    def _check_origin(self, headers: Mapping[str, str]) -> None:
        origin = next((v for k, v in headers.items() if k.lower() == "origin"), None)
        if not origin_allowed(self.origins, origin):  # a web page the user visits is not a client of the stack
            raise UpgradeRefused("origin not allowed")

    def _verify_request(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> KnownKeys:
        """The keys an HTTPS publish is signed with (UpgradeRefused: 403)."""
        self._check_origin(headers)
        return verify_signed_request(method, target, headers, body, self.issuer.lookup)

    def _grants(self, keys: KnownKeys) -> Grants | None:
        """What these keys may do: the role's policy and their session policy (None when permissive)."""
        if self.config.permissive:
            return None
        known = {COGNITO_SUB: keys.identity} if keys.identity else {}
        policies: tuple[Mapping[str, Any], ...] = (self.role_policy, keys.policy)
        if keys.identity and keys.authenticated:  # and the AWS IoT policies attached to the identity
            attached = self.attached.of(keys.identity)
            if not attached and self.log is not None:
                self.log(f"authenticated Cognito identity {keys.identity} has no AWS IoT policy attached: "
                         f"nothing is allowed (iotnotify setup-cognito --local --identity {keys.identity})")
            policies += (combined(attached) if attached else NOTHING,)
        return Grants(LOCAL_REGION, LOCAL_ACCOUNT, policies, known)

    def start(self) -> None:
        """Check the ports, then start the broker, its wss front and the keys endpoint."""
        check_port_free(self.config.wss_port, "MQTT over WebSocket", "--port")
        check_port_free(self.config.mqtt_port, "plain MQTT", "--mqtt-port")
        if self.config.ws_port is not None:
            check_port_free(self.config.ws_port, "MQTT over WebSocket for the page", "--ws-port")
        self.keys = KeysServer(self.config.keys_port, self.endpoint, self.issuer, aws_rules=not self.config.permissive,
                               mqtt_url=self.page_mqtt_url)
        try:
            self.broker.start()
            self.front.start()
        except BaseException:
            self.keys.httpd.server_close()
            self.broker.stop()
            raise
        self.keys.start()

    @property
    def page_mqtt_url(self) -> str | None:
        """Where the browser page connects: the ws:// listener (no browser trusts the local CA)."""
        return f"ws://127.0.0.1:{self.config.ws_port}/mqtt" if self.config.ws_port is not None else None

    @property
    def page_url(self) -> str:
        """The browser page: the keys endpoint's root."""
        return self.endpoint_url.removesuffix("iot/keys")

    @property
    def endpoint_url(self) -> str:
        """The keys endpoint URL clients use."""
        if self.keys is None:
            raise LocalStackError("the local stack is not started")
        return self.keys.url

    def profile(self) -> dict[str, str]:
        """The values of the `local` profile."""
        return {"endpoint": self.endpoint_url, "ca_file": str(self.tls.ca_file)}

    def cognito_profile(self) -> dict[str, str]:
        """The values of the `local-cognito` profile: keys from the local identity pool (the IoT
        endpoint from the keys endpoint, as Cognito does not say it)."""
        from iotnotify.cognito.local import COGNITO_PATH, POOL_ID

        return {**self.profile(), "cognito_pool": POOL_ID,
                "cognito_endpoint": self.endpoint_url.removesuffix("/iot/keys") + COGNITO_PATH}

    def stop(self) -> None:
        """Stop the keys endpoint, the front and the broker."""
        if self.keys is not None:
            self.keys.stop()
        self.front.stop()
        self.broker.stop()


def read_role_policy(text: bytes, name: str) -> dict[str, Any]:
    """A role policy from a JSON file, or UsageError saying what is wrong with it."""
    import json

    try:
        policy = json.loads(text)
    except ValueError as e:
        raise UsageError(f"--role-policy {name}: not JSON ({e})") from None
    if not isinstance(policy, dict) or not isinstance(policy.get("Statement"), (list, dict)):
        raise UsageError(f"--role-policy {name}: not an IAM policy (no Statement)")
    return policy


def default_state_dir() -> Path:
    """Where the local stack keeps its TLS material and broker files."""
    import platformdirs

    return Path(platformdirs.user_state_dir("iotnotify", appauthor=False)) / "local"


def run_until_stopped(stack: LocalStack) -> None:
    """Block until interrupted (KeyboardInterrupt: Ctrl-C or SIGTERM); raise if the broker dies."""
    while stack.broker.process is not None and stack.broker.process.poll() is None:
        time.sleep(0.2)
    raise LocalStackError(f"mosquitto stopped: {stack.broker.last_log_line()}")
