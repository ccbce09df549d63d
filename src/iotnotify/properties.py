"""MQTT 5 message properties: what `send` attaches to a message and `subscribe` shows of one.

One frozen value (Properties) for both ways; its JSON-lines fields (`subscribe --json`, `tail --save`,
read back by `send --records`); the text forms of the flags; and the limits, MQTT 5's everywhere and
AWS IoT Core's under its rules (limits.py says where they come from).
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, fields, replace
from typing import Any

from iotnotify import limits
from iotnotify.errors import UsageError
from iotnotify.topics import MQTT_STRING, check_string, check_topic

PAYLOAD_FORMATS = ("utf8", "bytes")  # MQTT 5's Payload Format Indicator: 1 and 0
MESSAGE_ID = "iotnotify-id"  # the user property `send` gives each message: 128 random bits in hex (dedupe.py)
SIGNED_AT, SIGNING_KEY, SIGNATURE = "iotnotify-time", "iotnotify-key", "iotnotify-sig"  # send --sign's (signing.py)
OWN = frozenset((MESSAGE_ID, SIGNED_AT, SIGNING_KEY, SIGNATURE))  # iotnotify's own: tail shows none of them
MQTT_U32 = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Properties:
    """The properties of one message; each absent (None, or no user properties) unless set."""

    user_properties: tuple[tuple[str, str], ...] = ()
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    message_expiry: int | None = None  # s; on a received message, what is left of it
    payload_format: str | None = None  # "utf8" or "bytes"

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) not in (None, ()) for f in fields(self))

    def record(self) -> dict[str, object]:
        """The JSON-lines fields of the properties that are set (correlation data that is not UTF-8
        as base64, with `"correlation_encoding": "base64"`)."""
        out: dict[str, object] = {}
        if self.user_properties:
            out["user_properties"] = [list(pair) for pair in self.user_properties]
        if self.content_type is not None:
            out["content_type"] = self.content_type
        if self.response_topic is not None:
            out["response_topic"] = self.response_topic
        if self.correlation_data is not None:
            text, encoding = correlation_text(self.correlation_data)
            out["correlation_data"] = text
            if encoding:
                out["correlation_encoding"] = encoding
        if self.message_expiry is not None:
            out["message_expiry"] = self.message_expiry
        if self.payload_format is not None:
            out["payload_format"] = self.payload_format
        return out

    def besides_own(self) -> bool:
        """Whether a property other than `send`'s `iotnotify-id` and signature is set (tail shows only
        those)."""
        return any(key not in OWN for key, _ in self.user_properties) or \
            any(getattr(self, f.name) is not None for f in fields(self) if f.name != "user_properties")

    def marker(self) -> str:
        """A few characters for `tail`'s compact view: which properties are set."""
        parts = []
        if shown := sum(key not in OWN for key, _ in self.user_properties):  # (every send's: not news)
            parts.append(f"{shown}p")
        if self.content_type is not None:
            parts.append(self.content_type)
        if self.response_topic is not None:
            parts.append("↩")
        if self.message_expiry is not None:
            parts.append(f"{self.message_expiry}s")
        return " ".join(parts) if parts else "·"

    def detail(self) -> str:
        """Every property that is set but iotnotify's own, as `name=value` words, for a view with room."""
        words = [f"{key}={value}" for key, value in self.user_properties if key not in OWN]
        for name, value in self.record().items():
            if name not in ("user_properties", "correlation_encoding"):
                words.append(f"{name}={value}")
        return " ".join(words)


def correlation_text(data: bytes) -> tuple[str, str | None]:
    """Correlation data as text: itself if UTF-8, else base64 (and the encoding's name)."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def parse_user_property(text: str) -> tuple[str, str]:
    """`KEY=VALUE` (the first `=` splits; the value may be empty)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--user-property {text!r} is not KEY=VALUE")
    return key, value


def parse_correlation(text: str) -> bytes:
    """--correlation-data: text as UTF-8, or `hex:...` / `base64:...` bytes."""
    kind, sep, rest = text.partition(":")
    try:
        if sep and kind == "hex":
            return bytes.fromhex(rest)
        if sep and kind == "base64":
            return base64.b64decode(rest, validate=True)
    except (ValueError, binascii.Error):
        raise UsageError(f"--correlation-data {text!r}: not valid {kind}") from None
    return text.encode("utf-8", "surrogateescape")


def from_record(record: dict[str, Any]) -> Properties:
    """The properties of a JSON-lines record (the fields `record()` writes); UsageError naming a
    field of the wrong shape."""
    def fail(name: str) -> UsageError:
        return UsageError(f"field {name!r} is not valid")

    pairs = record.get("user_properties", [])
    if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in pairs):
        raise fail("user_properties")
    strings = {}
    for name in ("content_type", "response_topic", "correlation_data", "payload_format"):
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            raise fail(name)
        strings[name] = value
    expiry = record.get("message_expiry")
    if expiry is not None and (not isinstance(expiry, int) or isinstance(expiry, bool) or expiry < 0):
        raise fail("message_expiry")
    if strings["payload_format"] is not None and strings["payload_format"] not in PAYLOAD_FORMATS:
        raise fail("payload_format")
    correlation = strings["correlation_data"]
    data = None
    if correlation is not None:
        if record.get("correlation_encoding") == "base64":
            try:
                data = base64.b64decode(correlation, validate=True)
            except (ValueError, binascii.Error):
                raise fail("correlation_data") from None
        else:
            data = correlation.encode("utf-8")
    return Properties(tuple((k, v) for k, v in pairs), strings["content_type"], strings["response_topic"], data,
                      expiry, strings["payload_format"])


def message_id(properties: Properties | None) -> str | None:
    """The message's `iotnotify-id` user property (the first), if it has one."""
    if properties is not None:
        for key, value in properties.user_properties:
            if key == MESSAGE_ID:
                return value
    return None


def with_message_id(properties: Properties | None, aws: bool) -> Properties | None:
    """`properties` with a new random `iotnotify-id` user property at the end, unless they have one
    (a replayed record keeps its own), or (`aws`) it would take the user properties over AWS IoT
    Core's limit (then as they are: the id is a help, not a condition)."""
    if properties is None:  # the common case, per message: the cheapest way (a third of replace()'s time)
        return Properties(user_properties=((MESSAGE_ID, os.urandom(16).hex()),))
    if message_id(properties) is not None:
        return properties
    if aws and user_properties_size(properties) + len(MESSAGE_ID) + 32 > limits.MAX_USER_PROPERTIES_BYTES:
        return properties or None
    return replace(properties, user_properties=(*properties.user_properties, (MESSAGE_ID, os.urandom(16).hex())))


def user_properties_size(properties: Properties) -> int:
    """Bytes of the user properties as AWS IoT Core counts them: keys and values, UTF-8."""
    return sum(len(key.encode("utf-8")) + len(value.encode("utf-8")) for key, value in properties.user_properties)


def check_properties(properties: Properties, aws: bool) -> None:
    """UsageError if the properties break MQTT 5's rules, or (`aws`) AWS IoT Core's limits."""
    _check_mqtt(properties, aws)
    if aws:
        _check_aws(properties)


def _check_string(flag: str, text: str) -> None:
    """An MQTT 5 string property: valid UTF-8 of at most 65,535 bytes, without the characters MQTT
    forbids or brokers refuse (a NUL made awscrt raise a RuntimeError, after the records before it)."""
    check_string(text, flag, MQTT_STRING, f"MQTT's {MQTT_STRING}", empty=True)


def _check_mqtt(properties: Properties, aws: bool) -> None:
    for key, value in properties.user_properties:
        _check_string("--user-property", key)
        _check_string("--user-property", value)
    if properties.content_type is not None:
        _check_string("--content-type", properties.content_type)
    if properties.response_topic is not None:
        try:
            check_topic(properties.response_topic, aws)
        except UsageError as e:
            raise UsageError(f"--response-topic: {e}") from None
    if properties.correlation_data is not None and len(properties.correlation_data) > MQTT_STRING:
        raise UsageError(f"--correlation-data: {len(properties.correlation_data)} bytes, over MQTT's {MQTT_STRING}")
    if properties.message_expiry is not None and not 0 <= properties.message_expiry <= MQTT_U32:
        raise UsageError(f"--message-expiry {properties.message_expiry}: not 0 to {MQTT_U32} seconds")


def _check_aws(properties: Properties) -> None:
    size = user_properties_size(properties)
    if size > limits.MAX_USER_PROPERTIES_BYTES:
        raise UsageError(f"user properties of {size} bytes, but AWS IoT Core takes at most "
                         f"{limits.MAX_USER_PROPERTIES_BYTES}")


def check_payload_format(properties: Properties | None, payload: bytes) -> None:
    """A payload said to be UTF-8 (`--payload-format utf8`) must be: brokers refuse it otherwise."""
    if properties is not None and properties.payload_format == "utf8":
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError("--payload-format utf8, but the payload is not UTF-8") from None
