"""--debug: what happened on the wire, one line per event, through `logging` (the core logs to the
logger `iotnotify.wire` and prints nothing; `enable()`, called by the CLI, sends it to stderr).

Never a secret: keys are described by their access key id, expiry, client id and topics only
(keys/view.described)."""

from __future__ import annotations

import logging
import sys
import time

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
