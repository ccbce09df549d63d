"""Records: one message per JSON line, as `subscribe --json` and `tail --save` write them, read back
by `send --records` to publish each again to its own topic (a capture replays as it was captured)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from iotnotify.errors import UsageError
from iotnotify.messages import Message
from iotnotify.properties import from_record


def parse_record(line: bytes, topic: str | None, qos: int, retain: bool) -> Message:
    """The message a record describes; `topic`, `qos` and `retain` for a record that says none.
    UsageError saying what is wrong with a line that is not a record."""
    record = _json_object(line)
    topic = record.get("topic", topic)
    if not isinstance(topic, str):
        raise UsageError("no topic (and no TOPIC given)" if topic is None else "field 'topic' is not a string")
    payload = record.get("payload", "")
    if not isinstance(payload, str):
        raise UsageError("field 'payload' is not a string")
    encoding = record.get("encoding")
    if encoding == "base64":
        try:
            data = base64.b64decode(payload, validate=True)
        except (ValueError, binascii.Error):
            raise UsageError("field 'payload' is not base64") from None
    elif encoding is None:
        try:
            data = payload.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError("field 'payload' is not UTF-8 text") from None
    else:
        raise UsageError(f"unknown encoding {encoding!r}")
    qos = record.get("qos", qos)
    if qos not in (0, 1) or isinstance(qos, bool):
        raise UsageError("field 'qos' is not 0 or 1")
    retain = record.get("retain", retain)
    if not isinstance(retain, bool):
        raise UsageError("field 'retain' is not true or false")
    properties = from_record(record)
    return Message(topic, data, qos, retain, properties=properties or None)


def _json_object(line: bytes) -> dict[str, Any]:
    """The JSON object a line holds; UsageError saying why it holds none."""
    try:
        record: Any = json.loads(line)
    except json.JSONDecodeError as e:
        raise UsageError(f"not a JSON record: {e.msg}") from None
    except RecursionError:  # nested thousands deep
        raise UsageError("not a JSON record: nested too deep") from None
    except ValueError:  # not UTF-8
        raise UsageError("not a JSON record: not UTF-8") from None
    if not isinstance(record, dict):
        raise UsageError("not a JSON object")
    return record
