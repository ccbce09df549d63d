"""MQTT over SigV4-signed WebSocket, as httpx shapes its transports: `base.py` holds the Connection
interface, its options and the reason codes and imports no implementation; `v5.py` (awsiotsdk's
MQTT 5 client) and `v311.py` (its MQTT 3.1.1 connection) implement it, with awscrt's internals
reached only through `iotnotify.crt`, and `https.py` publishes over AWS IoT Core's HTTPS
API instead (no awsiotsdk); `open_connection` here chooses."""

from __future__ import annotations

from pathlib import Path

from iotnotify.errors import ConnectError, KeysRefused
from iotnotify.keys import KeySource
from iotnotify.mqtt.base import (
    ACKED,
    CLOSED,
    NOT_ACKED,
    NOT_AUTHORIZED,
    Connection,
    ConnectOptions,
    OnDone,
    OnMessage,
    OnState,
    State,
    Will,
    check_options,
    reason,
    refusal,
    taken_over,
)
from iotnotify.settings import Protocol

__all__ = ["ACKED", "CLOSED", "NOT_ACKED", "NOT_AUTHORIZED", "ConnectOptions", "Connection", "OnDone", "OnMessage",
           "OnState", "Protocol", "State", "Will", "open_connection", "reason", "refusal", "taken_over"]


def open_connection(source: KeySource, options: ConnectOptions, on_message: OnMessage | None = None,
                    on_state: OnState | None = None) -> Connection:
    """Get keys, build the client for the chosen protocol and connect; raise our errors."""
    keys = source.get()
    check_options(keys, options)
    if options.ca_file is not None and not Path(options.ca_file).is_file():
        raise ConnectError(f"CA file {options.ca_file} does not exist")
    implementation: type[Connection]
    if options.https:
        from iotnotify.mqtt.https import HttpsConnection

        implementation = HttpsConnection
    elif options.protocol == Protocol.V311:
        from iotnotify.mqtt.v311 import Mqtt311Connection

        implementation = Mqtt311Connection
    else:
        from iotnotify.mqtt.v5 import Mqtt5Connection

        implementation = Mqtt5Connection
    connection = implementation(source, keys, options, on_message, on_state)
    try:
        connection.connect()
    except KeysRefused:
        if source.fetches:  # keys fetched just now and refused: nothing better to try
            raise
        # keys from the cache that the broker refuses (revoked, or a restarted local stack): fetch
        # new ones and try once more
        source.invalidate()
        connection = implementation(source, source.get(), options, on_message, on_state)
        connection.connect()
    return connection
