"""--debug: what happened on the wire, one line per event, through `logging` (the core logs to the
logger `iotnotify.wire` and prints nothing; `enable()`, called by the CLI, sends it to stderr).

Never a secret: keys are described by their access key id, expiry, client id and topics only."""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iotnotify.keys.model import TemporaryKeys

log = logging.getLogger("iotnotify.wire")
_start = time.time()


class _Elapsed(logging.Formatter):
    """`iotnotify: debug: +0.123 s message`: seconds since the trace began; what a broker or a server
    said in it escaped and cut (shown.py)."""

    def format(self, record: logging.LogRecord) -> str:
        from iotnotify.shown import LINE, shown

        return f"iotnotify: debug: +{record.created - _start:.3f} s {shown(record.getMessage(), LINE)}"


def enable() -> None:
    """Send the trace to stderr (once, however many times it is asked for)."""
    global _start  # noqa: PLW0603 - the trace's own clock starts when it is turned on
    if log.level == logging.DEBUG:
        return
    _start = time.time()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Elapsed())
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False


def on() -> bool:
    """Whether the trace is on (checked once per connection, not per message)."""
    return log.isEnabledFor(logging.DEBUG)


def describe_keys(keys: TemporaryKeys) -> str:
    """What the trace says of a set of keys: never the secret key or session token."""
    from iotnotify.times import iso

    parts = [f"access key {keys.access_key}", f"expire {iso(keys.expiration)}", f"endpoint {keys.host}:{keys.port}"]
    client = keys.raw.get("clientId")
    if isinstance(client, str):
        parts.append(f"client id {client}")
    topics = keys.raw.get("topics")
    if isinstance(topics, list):
        parts.append("topics " + ", ".join(str(t) for t in topics))
    if keys.aws_rules:
        parts.append("AWS rules")
    return ", ".join(parts)
