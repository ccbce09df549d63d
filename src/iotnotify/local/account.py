"""What AWS IoT Core keeps for an account across its connections, for the local stack's gateways:
the one CONNECT a second per client id, and when each MQTT 3.1.1 persistent session was left.

Both are bounded: any number of client ids cannot grow them without bound."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

from iotnotify import limits
from iotnotify.topics import SHARE, filter_matches

MAX_QUEUED = 100_000  # messages Mosquitto stores for one session (local/broker.py's max_queued_messages)


class ConnectRate:
    """AWS IoT Core's one CONNECT a second per client id, across every connection of the stack:
    `admit` says whether a CONNECT may go on now (one it refuses does not count; one the policy then
    refuses does, as AWS counts requests). It remembers the ids of the last second only (older ones
    are let go once it holds RECENT_IDS)."""

    RECENT_IDS = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._last: dict[str, float] = {}

    def admit(self, client_id: str) -> bool:
        now = self.clock()
        if now - self._last.get(client_id, float("-inf")) < limits.CONNECT_INTERVAL:
            return False
        if len(self._last) >= self.RECENT_IDS:
            self._last = {cid: at for cid, at in self._last.items() if now - at < limits.CONNECT_INTERVAL}
        self._last[client_id] = now
        return True


@dataclass
class Away:
    """A persistent session whose client left: when, with which filters (and the QoS granted; None:
    not known, as after a restart of the stack), what it may receive, and how many QoS 1 messages
    published since it would get (what the broker stores for it)."""

    since: float
    filters: dict[str, int] | None
    mqtt311: bool
    receives: Callable[[str], bool] = lambda _topic: True
    stored: int = 0


class StoredSessions:
    """The persistent sessions whose client left, for two of AWS IoT Core's rules Mosquitto does
    not keep: (1) a session left longer than `max_expiry` seconds ago is not resumed: AWS ends
    them after the account's session expiry (an hour by default); Mosquitto keeps MQTT 3.1.1 ones
    for ever but for its `persistent_client_expiration`, in whole hours (the stack sets it too,
    rounded up, as the backstop for sessions this forgets; MQTT 5 ones carry their own expiry). (2)
    A resumed session's stored messages are sent at 10 a second, and live ones as on any
    connection: the count of QoS 1 messages published (through the stack's front) to its filters
    while it was away tells the gateway how many to pace. It keeps the last LIMIT sessions, and
    counts for the last COUNTED (a publish is matched against each)."""

    LIMIT = 100_000
    COUNTED = 200  # each QoS 1 publish is matched against their filters: per-message work, kept small

    def __init__(self, max_expiry: float = limits.MAX_SESSION_EXPIRY, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_expiry = max_expiry
        self.clock = clock
        self._away: dict[str, Away] = {}  # client id -> its session, oldest first

    def left(self, client_id: str, filters: dict[str, int] | None, mqtt311: bool,
             receives: Callable[[str], bool] | None = None) -> None:
        """A connection holding `client_id`'s persistent session ended now (or gave the session to
        another connection, which picks its record up)."""
        self._away.pop(client_id, None)
        while len(self._away) >= self.LIMIT:
            del self._away[next(iter(self._away))]  # the oldest
        self._away[client_id] = Away(self.clock(), None if filters is None else dict(filters), mqtt311,
                                     receives or (lambda _topic: True))

    def published(self, topic: str) -> None:
        """A QoS 1 message was published to `topic`: stored for each of the COUNTED sessions left
        last that would get it (a QoS 1 filter of its own matching it, the topic one it may
        receive; a shared subscription's messages go to one member: not counted). Mosquitto keeps
        at most MAX_QUEUED."""
        for away in itertools.islice(reversed(self._away.values()), self.COUNTED):
            if away.filters and away.stored < MAX_QUEUED and any(
                    qos and not f.startswith(SHARE) and filter_matches(f, topic) for f, qos in away.filters.items()) \
                    and away.receives(topic):
                away.stored += 1

    def arrived(self, client_id: str) -> Away | None:
        """A CONNECT with `client_id` came: its session's record, if it was away (gone from here:
        the id's next session starts now)."""
        return self._away.pop(client_id, None)

    def expired(self, away: Away | None) -> bool:
        """Whether an MQTT 3.1.1 session was left longer ago than the account's session expiry."""
        return away is not None and away.mqtt311 and self.clock() - away.since > self.max_expiry
