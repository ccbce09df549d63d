"""`iotnotify local`: the broker, the keys endpoint and the `local` profile, started and stopped together."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from iotnotify.errors import LocalStackError, UsageError
from iotnotify.local.broker import Broker, check_port_free
from iotnotify.local.front import WebSocketFront
from iotnotify.local.keys_server import KeysServer, LocalIssuer
from iotnotify.local.sigv4 import check_upgrade
from iotnotify.local.tls import ensure_tls_files
from iotnotify.server.config import DEFAULT_TOPICS, ConfigInvalid, EndpointConfig

DEFAULT_WSS_PORT = 9443
DEFAULT_KEYS_PORT = 9080
DEFAULT_MQTT_PORT = 9883
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class StackConfig:
    """What `iotnotify local` starts and where."""

    state_dir: Path
    wss_port: int = DEFAULT_WSS_PORT
    keys_port: int = DEFAULT_KEYS_PORT
    mqtt_port: int = DEFAULT_MQTT_PORT
    lifetime: int = 3600
    topics: tuple[str, ...] = DEFAULT_TOPICS


class LocalStack:
    """Mosquitto behind a TLS WebSocket front that checks signatures against the keys the local
    endpoint minted, plus that endpoint, all on loopback."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.tls = ensure_tls_files(config.state_dir / "tls")
        self.broker = Broker(config.state_dir / "broker", config.mqtt_port)
        self.issuer = LocalIssuer(LOOPBACK, config.wss_port)
        self.front = WebSocketFront(config.wss_port, config.mqtt_port, self.tls,
                                    check=lambda path, headers: check_upgrade(path, headers, self.issuer.lookup))
        self.keys: KeysServer | None = None
        try:
            self.endpoint = EndpointConfig(topics=config.topics, lifetime=config.lifetime)
        except ConfigInvalid as e:
            raise UsageError(f"--topics: {e}") from None

    def start(self) -> None:
        """Check the ports, then start the broker, its wss front and the keys endpoint."""
        check_port_free(self.config.wss_port, "MQTT over WebSocket", "--port")
        check_port_free(self.config.mqtt_port, "plain MQTT", "--mqtt-port")
        self.keys = KeysServer(self.config.keys_port, self.endpoint, self.issuer)
        try:
            self.broker.start()
            self.front.start()
        except BaseException:
            self.keys.httpd.server_close()
            self.broker.stop()
            raise
        self.keys.start()

    @property
    def endpoint_url(self) -> str:
        """The keys endpoint URL clients use."""
        assert self.keys is not None
        return self.keys.url

    def profile(self) -> dict[str, str]:
        """The values of the `local` profile."""
        return {"endpoint": self.endpoint_url, "ca_file": str(self.tls.ca_file)}

    def stop(self) -> None:
        """Stop the keys endpoint, the front and the broker."""
        if self.keys is not None:
            self.keys.stop()
        self.front.stop()
        self.broker.stop()


def default_state_dir() -> Path:
    """Where the local stack keeps its TLS material and broker files."""
    import platformdirs

    return Path(platformdirs.user_state_dir("iotnotify", appauthor=False)) / "local"


def run_until_stopped(stack: LocalStack) -> None:
    """Block until interrupted (KeyboardInterrupt: Ctrl-C or SIGTERM); raise if the broker dies."""
    while stack.broker.process is not None and stack.broker.process.poll() is None:
        time.sleep(0.2)
    raise LocalStackError(f"mosquitto stopped: {stack.broker.last_log_line()}")
