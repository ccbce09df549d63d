"""How fast AWS IoT Core sends one connection its messages, for the local gateway.

- 100 messages a second (a burst of 100 saved): over it AWS discards them, QoS 1 too, and tells no
  one (limits.py: "Publish requests exceeding that limit will be discarded").
- 512 KiB a second: over it AWS delays them ("delayed in processing").
- A resumed persistent session's stored messages come "at a maximum rate of 10 messages per
  second", none discarded (Developer Guide, "MQTT persistent sessions"): as many as the stack
  counted while the session was away (local/account.StoredSessions), else until the broker has
  been quiet for REPLAY_QUIET seconds (but for these pauses).
- What queued behind them (Mosquitto sends a session's messages in order; AWS would have sent live
  ones alongside the stored ones) is delayed rather than discarded, until a second has passed with
  nothing held back.

The gateway asks `admit` for each message it may deliver, and delays reading the broker by the
pause it is given: a chunk the broker sent together goes together.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from iotnotify import limits
from iotnotify.throttle import TokenBucket

REPLAY_QUIET = 0.5  # s without a message from the broker (but for the pauses) that end a replay
SEND, HOLD, DISCARD = "send", "hold", "discard"  # a message goes now; goes, and the broker is read later; is dropped


class Outbound:
    """The pace of one connection's deliveries."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._messages = TokenBucket(limits.OUTBOUND_RATE, limits.OUTBOUND_RATE, clock)
        self._bytes = TokenBucket(limits.THROUGHPUT, limits.THROUGHPUT, clock)
        self._replay = TokenBucket(limits.REPLAY_RATE, limits.REPLAY_RATE, clock)
        self.replaying = False  # a resumed session's stored messages are being sent
        self._stored: int | None = None  # how many are left to send, if known
        self._catching_up = False  # what queued behind them is being sent
        self._held_until = 0.0  # when the last message held back lets the broker be read again
        self._quiet_from = 0.0  # the broker has been quiet since (but for the pauses)

    def resumed(self, stored: int | None) -> None:
        """The CONNACK resumed a session with `stored` messages waiting (None: not known)."""
        self._stored = stored
        self.replaying = stored != 0
        self._catching_up = True
        self._held_until = self._quiet_from = self.clock()

    def chunk(self) -> None:
        """Bytes came from the broker: a replay ends if it had been quiet long enough."""
        if self.replaying and self.clock() > self._quiet_from + REPLAY_QUIET:
            self.replaying = False  # nothing more stored (or fewer than counted): live from now

    def admit(self, qos1: bool) -> tuple[str, float]:
        """What to do with one message the connection may receive, and how long to wait before
        reading the broker again."""
        now = self.clock()
        if self._catching_up and not self.replaying and now - self._held_until >= 1 \
                and self._messages.delay(limits.OUTBOUND_RATE) == 0:
            self._catching_up = False  # a second under the rate since anything was held: caught up
        if self.replaying and qos1:
            if self._stored is not None:
                self._stored -= 1
                self.replaying = self._stored > 0
            self._replay.spend(1)
            self._messages.spend(1)
            return self._held(self._replay.delay(1))
        if self._messages.take():
            return SEND, 0.0
        if self._catching_up and qos1:
            self._messages.spend(1)
            return self._held(self._messages.delay(1))
        return DISCARD, 0.0

    def _held(self, pause: float) -> tuple[str, float]:
        self._held_until = max(self._held_until, self.clock() + pause)
        return HOLD, pause

    def sent(self, size: int, pause: float) -> float:
        """`size` bytes went to the client after a chunk whose messages asked `pause`: the pause
        before the broker is read again (512 KiB a second too)."""
        if size:
            self._bytes.spend(size)
            pause = max(pause, self._bytes.delay(0))
        if self.replaying:
            self._quiet_from = self.clock() + pause
        return pause
