"""MQTT over SigV4-signed WebSocket, shaped as httpx shapes its client: a `Session` (session.py) that
owns keys, credentials, renewal, pacing and what refusals mean, above a transport that only moves
packets: `v5.py` (awsiotsdk's MQTT 5 client), `v311.py` (its MQTT 3.1.1 connection) or `https.py`
(publishes over AWS IoT Core's HTTPS API, no awsiotsdk). Each message ends in an `Outcome`
(outcome.py); `options.py` says how to connect; awscrt's internals only through `iotnotify.crt`.
`open_session` here chooses the transport and connects."""

from __future__ import annotations

from pathlib import Path

from iotnotify.errors import ConnectError, KeysRefused
from iotnotify.keys import KeySource
from iotnotify.mqtt.options import ConnectOptions, Will, check_options
from iotnotify.mqtt.outcome import NOT_AUTHORIZED, Kind, OnDone, Outcome, reason
from iotnotify.mqtt.session import OnMessage, Session
from iotnotify.mqtt.transport import OnState, State, Transport
from iotnotify.settings import Protocol

__all__ = ["NOT_AUTHORIZED", "ConnectOptions", "Kind", "OnDone", "OnMessage", "OnState", "Outcome", "Protocol",
           "Session", "State", "Will", "open_session", "reason"]


def transport_for(options: ConnectOptions) -> type[Transport]:
    """The transport the options ask for (imported only then: each costs its awsiotsdk module)."""
    if options.https:
        from iotnotify.mqtt.https import HttpsTransport

        return HttpsTransport
    if options.protocol == Protocol.V311:
        from iotnotify.mqtt.v311 import Mqtt311Transport

        return Mqtt311Transport
    from iotnotify.mqtt.v5 import Mqtt5Transport

    return Mqtt5Transport


def open_session(source: KeySource, options: ConnectOptions, on_message: OnMessage | None = None,
                 on_state: OnState | None = None) -> Session:
    """Get keys, check the options against them, connect with the chosen transport; raise our errors.
    Cached keys the broker refuses (revoked, or a restarted local stack) are fetched anew once."""
    keys = source.get()
    check_options(keys, options)
    if options.ca_file is not None and not Path(options.ca_file).is_file():
        raise ConnectError(f"CA file {options.ca_file} does not exist")
    make = transport_for(options)
    session = Session(source, keys, options, make, on_message, on_state)
    try:
        session.connect()
    except KeysRefused:
        if source.fetches:  # keys fetched just now and refused: nothing better to try
            raise
        source.invalidate()
        session = Session(source, source.get(), options, make, on_message, on_state)
        session.connect()
    return session
