"""How fast AWS IoT Core sends one connection its messages, for the local gateway.

- 100 messages a second (a burst of 100 saved): over it AWS discards them, QoS 1 too, and tells no
  one (limits.py: "Publish requests exceeding that limit will be discarded").
- 512 KiB a second: over it AWS delays them ("delayed in processing").
- A resumed persistent session's stored messages come "at a maximum rate of 10 messages per
  second", none discarded (Developer Guide, "MQTT persistent sessions"): as many as the stack
  counted while the session was away (local/account.StoredSessions); none when it does not know.
- On a resumed session, QoS 1 messages over the rate are delayed, not discarded, for as long as the
  connection lasts: Mosquitto sends a session's messages in order, and what queued behind the
  stored ones comes in a burst AWS would not have made (it sends live ones alongside); the stack
  cannot tell the one from the other, and must not lose a stored message.

The gateway asks `admit` for each message it may deliver, and delays reading the broker by the
pause it is given: a chunk the broker sent together goes together.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from iotnotify import limits
from iotnotify.throttle import TokenBucket

SEND, HOLD, DISCARD = "send", "hold", "discard"  # a message goes now; goes, and the broker is read later; is dropped


class Outbound:
    """The pace of one connection's deliveries."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._messages = TokenBucket(limits.OUTBOUND_RATE, limits.OUTBOUND_RATE, clock)
        self._bytes = TokenBucket(limits.THROUGHPUT, limits.THROUGHPUT, clock)
        self._replay = TokenBucket(limits.REPLAY_RATE, limits.REPLAY_RATE, clock)
        self._stored = 0  # a resumed session's stored messages still to send at the replay rate
        self._resumed = False  # a resumed session's QoS 1 messages are held back, never discarded

    def resumed(self, stored: int | None) -> None:
        """The CONNACK resumed a session with `stored` messages waiting (None: not known)."""
        self._stored = stored or 0
        self._resumed = True

    def admit(self, qos1: bool) -> tuple[str, float]:
        """What to do with one message the connection may receive, and how long to wait before
        reading the broker again."""
        if self._stored and qos1:
            self._stored -= 1
            self._replay.spend(1)
            self._messages.spend(1)
            return HOLD, self._replay.delay(1)
        if self._messages.take():
            return SEND, 0.0
        if self._resumed and qos1:
            self._messages.spend(1)
            return HOLD, self._messages.delay(1)
        return DISCARD, 0.0

    def sent(self, size: int, pause: float) -> float:
        """`size` bytes went to the client after a chunk whose messages asked `pause`: the pause
        before the broker is read again (512 KiB a second too)."""
        if size:
            self._bytes.spend(size)
            pause = max(pause, self._bytes.delay(0))
        return pause
