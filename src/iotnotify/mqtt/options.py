"""How to connect, beyond what the keys say (ConnectOptions, a Will), and what the broker would
refuse of it, refused before connecting; the client id a connection takes."""

from __future__ import annotations

import os
from dataclasses import dataclass

from iotnotify import limits
from iotnotify.errors import Refused, UsageError
from iotnotify.keys import TemporaryKeys
from iotnotify.keys.allowance import check_publish
from iotnotify.settings import (
    DEFAULT_KEEPALIVE,
    DEFAULT_RECONNECT_DELAY,
    DEFAULT_SESSION_EXPIRY,
    Protocol,
    Settings,
)
from iotnotify.topics import MQTT_STRING, check_payload, check_string, check_topic


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
    https: bool = False  # publish over HTTPS (mqtt/https.py) instead of connecting with MQTT
    long_running: bool = False  # runs for days: a connection the broker ends is made again (unless taken over)
    receive_maximum: int | None = None  # MQTT 5: QoS 1 messages the broker may have unacknowledged with us
    manual_ack: bool = False  # MQTT 5: a QoS 1 message is acknowledged by its Message.ack(), not on arrival

    @classmethod
    def from_settings(cls, settings: Settings, session: str | None = None,
                      session_expiry: int = DEFAULT_SESSION_EXPIRY,
                      reconnect_delay: tuple[float, float] = DEFAULT_RECONNECT_DELAY,
                      will: Will | None = None, long_running: bool = False, https: bool = False) -> ConnectOptions:
        """The options the settings (and, for long-running commands, their session and reconnection
        flags, and a will; for a send, HTTPS) ask for."""
        return cls(protocol=Protocol(settings.protocol), client_id=settings.client_id, ca_file=settings.ca_file,
                   keep_alive=settings.keepalive, session=session, session_expiry=session_expiry,
                   min_reconnect_delay=reconnect_delay[0], max_reconnect_delay=reconnect_delay[1], will=will,
                   proxy=settings.proxy, long_running=long_running, https=https)


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


def numbered(options: ConnectOptions, number: int, count: int) -> ConnectOptions:
    """The options of connection `number` of `count` opened together: a given --client-id or
    --session becomes ID-1, ID-2... (one connection keeps it as it is; ids of the keys' own are
    random per connection anyway)."""
    from dataclasses import replace

    if count == 1:
        return options
    return replace(options, client_id=f"{options.client_id}-{number}" if options.client_id else None,
                   session=f"{options.session}-{number}" if options.session else None)


def client_id_for(keys: TemporaryKeys) -> str:
    """A client id of this process's own: below the keys' `clientId` when they name one (keys shared
    through the cache must not make processes take over each other's connection), else random."""
    owner = keys.raw.get("clientId")
    if isinstance(owner, str) and owner:
        return f"{owner}-{os.urandom(4).hex()}"
    return "iotnotify-" + os.urandom(6).hex()
