"""Turning received messages into output lines: raw payload, topic-prefixed, or JSON lines."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable

from iotnotify.messages import Message

Formatter = Callable[[Message], bytes]


def iso_time(epoch: float) -> str:
    """Receive time as ISO 8601 UTC with milliseconds."""
    moment = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def as_record(message: Message) -> dict[str, object]:
    """The JSON-lines record of a message; a payload that is not UTF-8 goes as base64."""
    record: dict[str, object] = {"topic": message.topic}
    try:
        record["payload"] = message.payload.decode("utf-8")
    except UnicodeDecodeError:
        record["payload"] = base64.b64encode(message.payload).decode("ascii")
        record["encoding"] = "base64"
    record.update(qos=message.qos, retain=message.retain, time=iso_time(message.time))
    return record


def format_raw(message: Message) -> bytes:
    """The payload alone, as received."""
    return message.payload + b"\n"


def format_verbose(message: Message) -> bytes:
    """Topic, a space, then the payload (mosquitto_sub -v)."""
    return message.topic.encode("utf-8") + b" " + message.payload + b"\n"


def format_json(message: Message) -> bytes:
    """One JSON object per line (see as_record)."""
    return json.dumps(as_record(message), ensure_ascii=False).encode("utf-8") + b"\n"


def formatter(json_lines: bool = False, verbose: bool = False) -> Formatter:
    """Choose the formatter for the flags given."""
    if json_lines:
        return format_json
    return format_verbose if verbose else format_raw
