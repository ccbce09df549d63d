"""Turning received messages into output: payload lines, templates, JSON lines, and the one-line
previews `tail` shows. One formatter for `subscribe` and `tail`."""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

from iotnotify.errors import UsageError
from iotnotify.messages import Message
from iotnotify.shown import escaped
from iotnotify.times import iso

Formatter = Callable[[Message], bytes]

FIELDS = {
    "topic": "the topic",
    "payload": "the payload as received (bytes that are not UTF-8 pass through unchanged)",
    "qos": "0 or 1",
    "retain": "true or false",
    "time": "receive time, ISO 8601 UTC with milliseconds",
    "json": "the payload as compact JSON (a JSON payload re-encoded, other text as a JSON string)",
    "base64": "the payload in base64",
    "hex": "the payload in hex",
    "user_properties": "MQTT 5 user properties as JSON, [[\"key\", \"value\"], ...] (empty when none)",
    "content_type": "MQTT 5 content type (empty when none; likewise the fields below)",
    "response_topic": "MQTT 5 response topic",
    "correlation_data": "MQTT 5 correlation data (base64 when not UTF-8)",
    "message_expiry": "MQTT 5 message expiry: seconds left",
    "payload_format": "MQTT 5 payload format: utf8 or bytes",
    "signed_by": "with --verify: the name the file gives the key that signed the message",
}
PROPERTY_FIELDS = ("user_properties", "content_type", "response_topic", "correlation_data", "message_expiry",
                   "payload_format")


def as_record(message: Message) -> dict[str, object]:
    """The JSON-lines record of a message; a payload that is not UTF-8 goes as base64."""
    try:
        record: dict[str, object] = {"topic": message.topic, "payload": message.payload.decode("utf-8")}
    except UnicodeDecodeError:
        record = {"topic": message.topic, "payload": base64.b64encode(message.payload).decode("ascii"),
                  "encoding": "base64"}
    record["qos"] = message.qos
    record["retain"] = message.retain
    record["time"] = iso(message.time, milliseconds=True)
    if message.properties:
        record.update(message.properties.record())
    if message.signer is not None:
        record["signed_by"] = message.signer
    return record


def parse_json(payload: bytes) -> object | None:
    """The payload as a JSON value if it is a JSON object or array, else None."""
    stripped = payload.lstrip()
    if stripped[:1] not in (b"{", b"["):
        return None
    try:
        value: object = json.loads(payload)
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep (a peer's 128 KB of `[`)
        return None
    return value


def compact_json(payload: bytes) -> str:
    """`{json}`: a JSON payload re-encoded compactly; any other payload as a JSON string."""
    value = parse_json(payload)
    if value is None:
        try:
            value = json.loads(payload)  # a JSON scalar: 42, "text", true
        except (ValueError, RecursionError):
            value = payload.decode("utf-8", "replace")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class OutputStyle:
    """How `subscribe` (and plain `tail`) print each message."""

    json_lines: bool = False
    verbose: bool = False
    template: str | None = None
    pretty: bool = False
    end: bytes = b"\n"  # after each message: -N none, -0 a NUL

    @property
    def cheap(self) -> bool:
        """Whether a message renders by concatenation alone (the payload, -v): cheap enough to be
        written by the thread that received it. --json, --pretty and templates cost more, which the
        writing thread does better in parallel with awscrt's (bench/README.md, "Subscribe")."""
        return not (self.json_lines or self.pretty or self.template is not None)


def check_template(template: str) -> list[str]:
    """The fields a --format template uses; unknown fields and bad braces are a UsageError."""
    try:
        names = [name for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as e:
        raise UsageError(f"--format {template!r}: {e}") from None
    for name in names:
        if name not in FIELDS:
            raise UsageError(f"--format: unknown field {{{name}}} (fields: {', '.join(FIELDS)})")
    return names


def _template_formatter(template: str) -> Callable[[Message], bytes]:
    """A formatter for a --format template; only the fields it uses are computed."""
    names = set(check_template(template))
    wants_properties = not names.isdisjoint(PROPERTY_FIELDS)

    def render(message: Message) -> bytes:
        values: dict[str, object] = {}
        if "topic" in names:
            values["topic"] = message.topic
        if "payload" in names:
            values["payload"] = message.payload.decode("utf-8", "surrogateescape")
        if "qos" in names:
            values["qos"] = message.qos
        if "retain" in names:
            values["retain"] = "true" if message.retain else "false"
        if "time" in names:
            values["time"] = iso(message.time, milliseconds=True)
        if "json" in names:
            values["json"] = compact_json(message.payload)
        if "base64" in names:
            values["base64"] = base64.b64encode(message.payload).decode("ascii")
        if "hex" in names:
            values["hex"] = message.payload.hex()
        if "signed_by" in names:
            values["signed_by"] = message.signer or ""
        if wants_properties:
            values.update(property_values(message))
        return template.format_map(values).encode("utf-8", "surrogateescape")

    return render


def property_values(message: Message) -> dict[str, object]:
    """The template's property fields: as in the JSON record, user properties as JSON, "" when absent."""
    values: dict[str, object] = dict.fromkeys(PROPERTY_FIELDS, "")
    if message.properties:
        record = message.properties.record()
        record.pop("correlation_encoding", None)
        values.update(record)
        if message.properties.user_properties:
            values["user_properties"] = json.dumps(record["user_properties"], ensure_ascii=False,
                                                   separators=(",", ":"))
    return values


def _pretty(payload: bytes) -> bytes:
    """An indented rendering of a JSON payload; any other payload unchanged."""
    value = parse_json(payload)
    if value is None:
        return payload
    return json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8")


def json_encoder() -> Callable[[object], str]:
    """What json.dumps(value, ensure_ascii=False) writes, with json's C encoder made once.

    dumps makes a JSONEncoder and a C encoder at each call: half of `subscribe --json`'s time per
    message. (No check for circular values: records have none.)
    """
    from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]

    if c_make_encoder is None:  # a Python without the _json accelerator
        return json.JSONEncoder(ensure_ascii=False).encode
    make = c_make_encoder(None, json.JSONEncoder().default, encode_basestring, None, ": ", ", ", False, False, True)
    return lambda value: "".join(make(value, 0))


def formatter(style: OutputStyle) -> Formatter:
    """The function that turns one message into its output bytes for this style."""
    end = style.end
    if style.template is not None:
        render = _template_formatter(style.template)
        return lambda m: render(m) + end
    if style.json_lines:
        encode = json_encoder()
        return lambda m: encode(as_record(m)).encode("utf-8") + end
    payload = _pretty if style.pretty else (lambda p: p)
    if style.verbose:
        return lambda m: m.topic.encode("utf-8") + b" " + payload(m.payload) + end
    if not style.pretty and end == b"\n":
        return lambda m: m.payload + b"\n"  # the common case, kept to one concatenation
    return lambda m: payload(m.payload) + end


def preview(payload: bytes, width: int) -> tuple[str, str]:
    """What `tail` shows of a payload in `width` characters, and its kind: "json" (compacted),
    "text", or "binary" (`<N bytes>` and a hex preview); characters a terminal would act on escaped."""
    value = parse_json(payload)
    if value is not None:
        text, kind = json.dumps(value, ensure_ascii=False, separators=(",", ":")), "json"
    else:
        try:
            text, kind = payload.decode("utf-8"), "text"
        except UnicodeDecodeError:
            hex_preview = payload[: max(width // 3, 1)].hex(" ")
            text, kind = f"<{len(payload)} bytes> {hex_preview}", "binary"
        text = " ".join(text.split()) if kind == "text" else text  # one line
    text = escaped(text)  # a peer's ESC or U+202E never reaches the terminal as such
    if len(text) > width:
        text = text[: max(width - 1, 0)] + "…"
    return text, kind


class MessageWriter:
    """Writes rendered messages to a binary stream (stdout), flushing at the end of each burst:
    within one, a write per buffer, not per message. `count` says how many were written."""

    def __init__(self, render: Formatter, out: BinaryIO) -> None:
        self.render = render
        self.out = out
        self.count = 0

    def write_out(self, data: bytes | bytearray, count: int) -> None:
        """Write and flush `count` rendered messages (for Inbox.deliver_to, which renders them)."""
        self.out.write(data)
        self.out.flush()
        self.count += count

    def write_all(self, messages: Iterable[Message], burst_over: Callable[[], bool] = lambda: True) -> None:
        """Write each message; flush whenever `burst_over()` says nothing more is waiting."""
        write, flush = self.out.write, self.out.flush
        for message in messages:
            write(self.render(message))
            self.count += 1
            if burst_over():
                flush()
        flush()
