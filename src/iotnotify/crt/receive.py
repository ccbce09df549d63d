"""Receiving MQTT 5 messages without awscrt's Python objects per message (`lean_receive`).

awscrt's native client hands each PUBLISH to `_ClientCore._on_publish`, which builds a
`PublishPacket` (a dataclass of 20 fields, its QoS and format through enums), the user properties
as dataclasses, a closure for acknowledgement control and a `PublishReceivedData`, then calls the
user's callback, which reads them back: most of `subscribe`'s CPU per message (bench/README.md).
Where `_on_publish`'s parameters are the ones read here (awscrt 0.36's, and the same less the last
before it), the client is built with a core whose `_on_publish` passes the fields straight to a
plain function; anywhere else awscrt's own is kept (OFF says why, crt.report() which).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import awscrt
from awscrt import mqtt5

from iotnotify.crt import decide
from iotnotify.properties import Properties

Lean = Callable[[str, bytes, int, bool, "Properties | None"], None]
"""What gets each message: topic, payload, QoS, retain flag, properties (None when it has none)."""

KNOWN = ("self", "payload", "qos", "retain", "topic", "payload_format_indicator_exists", "payload_format_indicator",
         "message_expiry_interval_sec_exists", "message_expiry_interval_sec", "topic_alias_exists", "topic_alias",
         "response_topic", "correlation_data", "subscription_identifiers_tuples", "content_type",
         "user_properties_tuples")
"""`_ClientCore._on_publish`'s parameters as read in awscrt 0.36.1's mqtt5.py, which adds
`puback_control_id` (returning whether the callback took the acknowledgement) to the earlier ones."""


def _fits(on_publish: Any) -> bool:
    code = getattr(on_publish, "__code__", None)
    if code is None:
        return False
    names = tuple(code.co_varnames[:code.co_argcount])
    return names in (KNOWN, (*KNOWN, "puback_control_id"))


OFF = decide("lean_receive", awscrt.__version__,
             _fits(getattr(getattr(mqtt5, "_ClientCore", None), "_on_publish", None)))
"""Why this awscrt's client core is not given the lean `_on_publish` ("" when it is)."""
ACTIVE = not OFF

_building = threading.Lock()  # the module's _ClientCore is swapped while one client is built


def build(make: Callable[[], mqtt5.Client], lean: Lean) -> mqtt5.Client:
    """The client `make()` builds, its received messages going to `lean` (when ACTIVE; else the
    caller's on_publish_received, given to `make`, gets them as awscrt delivers them)."""
    if not ACTIVE:
        return make()
    original = mqtt5._ClientCore  # noqa: SLF001 - the shortcut this module is

    class LeanCore(original):  # type: ignore[misc, valid-type]
        def _on_publish(self, payload: bytes, qos: int, retain: bool, topic: str, format_exists: bool,
                        payload_format: int, expiry_exists: bool, expiry: int, _alias_exists: bool, _alias: int,
                        response_topic: str | None, correlation: bytes | None, _identifiers: Any,
                        content_type: str | None, user_properties: list[tuple[str, str]] | None,
                        *_control: Any) -> bool:
            if self._on_publish_cb is None:
                return False
            properties = None
            if format_exists or expiry_exists or response_topic is not None or correlation is not None \
                    or content_type is not None or user_properties:
                properties = Properties(
                    user_properties=tuple(user_properties or ()), content_type=content_type,
                    response_topic=response_topic, correlation_data=correlation,
                    message_expiry=expiry if expiry_exists else None,
                    payload_format=("utf8" if payload_format == 1 else "bytes") if format_exists else None)
            lean(topic, payload, qos, retain, properties)
            return False  # awscrt acknowledges a QoS 1 message itself, as without this core

    with _building:
        mqtt5._ClientCore = LeanCore  # noqa: SLF001
        try:
            return make()
        finally:
            mqtt5._ClientCore = original  # noqa: SLF001
