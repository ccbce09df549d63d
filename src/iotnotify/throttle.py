"""A token bucket: at most `rate` units per second, with up to `capacity` saved for a burst."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """`take` spends a unit if one is there; `delay` says how long until `n` units are. It starts full."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = capacity
        self.clock = clock
        self._tokens = capacity
        self._at = clock()

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def take(self, n: float = 1) -> bool:
        """Spend `n` units if there are that many now; False (nothing spent) if not."""
        self._refill()
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    def delay(self, n: float = 1) -> float:
        """Seconds until `n` units (at most a full bucket's worth) are there; 0 if they are now."""
        self._refill()
        missing = min(n, self.capacity) - self._tokens
        return max(missing / self.rate, 0.0)

    def spend(self, n: float) -> None:
        """Spend `n` units whether or not they are there (the bucket owes the rest)."""
        self._refill()
        self._tokens -= n


class Pacer:
    """Keeps one connection inside AWS IoT Core's publish rate and throughput (limits.py), with room
    to spare: 97 publishes a second after a burst of 10 (AWS's own SDK paces to a bucket of 100 a
    second with 100 saved), and 95% of the byte rate, so that network jitter bunching messages up on
    the way cannot push AWS's count over its limit."""

    RATE, BURST = 97.0, 10.0

    def __init__(self, rate: float, throughput: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.messages = TokenBucket(min(rate, self.RATE), self.BURST, clock)
        self.bytes = TokenBucket(throughput * 0.95, throughput * 0.95, clock)

    def delay(self, size: int) -> float:
        """Seconds until a message of `size` bytes may go."""
        return max(self.messages.delay(1), self.bytes.delay(size))

    def wait(self, size: int) -> None:
        """Sleep until a message of `size` bytes may go, and count it as gone."""
        pause = self.delay(size)
        if pause > 0:
            time.sleep(pause)
        self.messages.spend(1)
        self.bytes.spend(size)
