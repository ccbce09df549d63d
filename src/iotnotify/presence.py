"""`presence`: who is connected, from AWS IoT Core's lifecycle events (`$aws/events/presence/
connected|disconnected/CLIENTID`, Developer Guide "Lifecycle events"), and what clients last
published on status topics (their wills, and what they say when up).

A disconnect event tells a crash from a clean exit: `clientInitiatedDisconnect` false, or a
disconnectReason such as CONNECTION_LOST or MQTT_KEEP_ALIVE_TIMEOUT, is a client that went away
without a word; a will on a status topic says the same. Silence (`watch`) is the stall no event
says. Memory is bounded: MAX_ENTRIES clients and status topics, the least recently changed
forgotten first.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from iotnotify.messages import Message

EVENTS_FILTER = "$aws/events/presence/+/+"
PREFIX = "$aws/events/presence/"
MAX_ENTRIES = 10_000
MAX_NAME = 512  # characters of a client id or topic kept (AWS: 128 and 256 bytes)
MAX_PAYLOAD = 1024  # bytes of a status message kept (the board holds MAX_ENTRIES of them)
CLEAN = "CLIENT_INITIATED_DISCONNECT"
REASON = re.compile(r"[A-Z][A-Z_]{0,63}")  # AWS's disconnectReason values: CONNECTION_LOST...
LATEST = 4_102_444_800  # 2100-01-01: a timestamp past it (or not positive) is not taken


@dataclass(frozen=True)
class Change:
    """One change: a client `connected` or `disconnected` (with AWS's reason, and whether the
    client asked for it), or a `status` message on a watched topic (its payload, retained or
    live). `time` is epoch seconds (the event's own timestamp when it has one)."""

    kind: str
    name: str  # the client id, or the status topic
    time: float
    reason: str | None = None
    clean: bool | None = None
    payload: bytes = b""
    retained: bool = False

    @property
    def crashed(self) -> bool:
        """A disconnect the client did not ask for."""
        return self.kind == "disconnected" and not self.clean

    def record(self) -> dict[str, object]:
        from iotnotify.times import iso

        out: dict[str, object] = {"event": self.kind, "time": iso(self.time, milliseconds=True)}
        if self.kind == "status":
            out.update(topic=self.name, payload=self.payload.decode("utf-8", "replace"), retained=self.retained)
        else:
            out["client_id"] = self.name
            if self.kind == "disconnected":
                out.update(reason=self.reason, clean=self.clean)
        return out


def change_of(message: Message) -> Change:
    """The change a message says: a lifecycle event (from its topic, and its JSON where readable
    and sane), or a status message (its first MAX_PAYLOAD bytes)."""
    kind, _, client_id = message.topic[len(PREFIX):].partition("/")
    if not message.topic.startswith(PREFIX) or kind not in ("connected", "disconnected") or not client_id:
        return Change("status", message.topic[:MAX_NAME], message.time, payload=message.payload[:MAX_PAYLOAD],
                      retained=message.retain)  # (a topic of the prefix not AWS's presence events: as it is)
    fields = _fields(message.payload)
    stamp = fields.get("timestamp")
    when = message.time  # unless the event's own time is a sane one (a peer's could be 1e400, or NaN)
    if isinstance(stamp, (int, float)) and not isinstance(stamp, bool) and 0 < stamp < LATEST * 1000:
        when = stamp / 1000  # (NaN and infinities fail the comparison; a 400-digit int is compared, not divided)
    if kind == "connected":
        return Change(kind, client_id[:MAX_NAME], when)
    given = fields.get("disconnectReason")
    reason = given if isinstance(given, str) and REASON.fullmatch(given) else None
    initiated = fields.get("clientInitiatedDisconnect")
    clean = initiated if isinstance(initiated, bool) else reason == CLEAN if reason is not None else None
    return Change(kind, client_id[:MAX_NAME], when, reason, clean)


def _fields(payload: bytes) -> dict[str, object]:
    try:
        value = json.loads(payload[:65536])  # an event is a few hundred bytes
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


class Board:
    """The last change of each client and status topic (at most MAX_ENTRIES, the least recently
    changed forgotten first), newest last."""

    def __init__(self, limit: int = MAX_ENTRIES) -> None:
        self.limit = limit
        self.entries: dict[tuple[str, str], Change] = {}  # (client|status, name) -> its last change

    def take(self, change: Change) -> None:
        key = ("status" if change.kind == "status" else "client", change.name)
        self.entries.pop(key, None)
        self.entries[key] = change
        while len(self.entries) > self.limit:
            del self.entries[next(iter(self.entries))]

    def record(self) -> dict[str, object]:
        """The board as one JSON document: clients (connected or not) and statuses."""
        return {"clients": [c.record() for (what, _), c in self.entries.items() if what == "client"],
                "statuses": [c.record() for (what, _), c in self.entries.items() if what == "status"]}
