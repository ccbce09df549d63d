"""What AWS IoT Core keeps for an account across its connections, for the local stack's gateways:
the one CONNECT a second per client id, and when each MQTT 3.1.1 persistent session was left.

Both are bounded: any number of client ids cannot grow them without bound."""

from __future__ import annotations

import time
from collections.abc import Callable

from iotnotify import limits


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


class StoredSessions:
    """When each MQTT 3.1.1 persistent session's last connection ended, so that one left longer
    than `max_expiry` seconds ago is not resumed: AWS IoT Core ends those after the account's
    session expiry (an hour by default), where Mosquitto keeps them for ever but for its
    `persistent_client_expiration`, in whole hours (the stack sets it too, rounded up, as the
    backstop for ids this forgets: it keeps the last LIMIT). MQTT 5 sessions carry their own
    expiry, which Mosquitto keeps."""

    LIMIT = 100_000

    def __init__(self, max_expiry: float = limits.MAX_SESSION_EXPIRY, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_expiry = max_expiry
        self.clock = clock
        self._left: dict[str, float] = {}  # client id -> when its persistent session's connection ended

    def left(self, client_id: str) -> None:
        """A connection holding `client_id`'s MQTT 3.1.1 persistent session ended now."""
        self._left.pop(client_id, None)
        while len(self._left) >= self.LIMIT:
            del self._left[next(iter(self._left))]  # the oldest
        self._left[client_id] = self.clock()

    def expired(self, client_id: str) -> bool:
        """A CONNECT with `client_id` arrived: whether the session stored for it expired (the broker
        must forget it first). The id's record goes: its next session starts now."""
        left = self._left.pop(client_id, None)
        return left is not None and self.clock() - left > self.max_expiry
