"""When to connect again under AWS IoT Core's rules, so that a short outage stays short.

AWS IoT Core takes one CONNECT a second per client id, and awscrt's client can only back off
exponentially from a minimum of a second (1, 2, 4, 8 s...): a 5-s outage became 7 s, a 20-s one
31 s, and a connection AWS ends (at 24 hours) waited a second before trying again
(bench/recovery.py). The session (session.py) follows this plan instead, with a new transport
where awscrt's client would wait (its first attempt is made at once):

- a connection that ends is made again at once, or a second after the last attempt began if that
  was less than a second ago;
- for FAST_FOR seconds of an outage, an attempt each second (awscrt's client with its minimum and
  maximum delay both the second), which finds the network within a second of its return;
- after that, or when the broker ended the connection for load (server busy, quota exceeded,
  connection rate exceeded), a client that backs off as awscrt does, from two seconds.

A pure plan: it is told what happened and says when to make which transport (Plan); the session
makes it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

FAST_FOR = 20.0  # s of an outage with an attempt each interval, before backing off
THROTTLED = {0x89, 0x97, 0x9F}  # DISCONNECT reasons that ask for less: server busy, quota exceeded, rate exceeded


@dataclass(frozen=True)
class Plan:
    """Make a new transport at `at` (time.monotonic()); `patient`: one whose client backs off."""

    at: float
    patient: bool


class Retry:
    """The plan of one session; `patient` says what its current transport is (the session sets it)."""

    def __init__(self, interval: float, fast_for: float = FAST_FOR, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval  # s between CONNECTs with one client id, at least (AWS: a second)
        self.fast_for = fast_for
        self.clock = clock
        self.patient = False
        self.down_since: float | None = None  # when the outage began; None while connected
        self._last_attempt = float("-inf")

    @property
    def backoff(self) -> float:
        """The first delay of a patient transport's client (it doubles from there)."""
        return 2 * self.interval

    def attempted(self) -> None:
        """A connection attempt began."""
        self._last_attempt = self.clock()

    def connected(self) -> None:
        self.down_since = None

    def lost(self, code: int = 0) -> Plan:
        """The connection ended (`code`: the broker's DISCONNECT reason, 0 if none)."""
        now = self.clock()
        if self.down_since is None:
            self.down_since = now
        if code in THROTTLED:
            return Plan(max(now, self._last_attempt + self.interval) + self.backoff, patient=True)
        return Plan(max(now, self._last_attempt + self.interval), patient=False)

    def failed(self) -> Plan | None:
        """An attempt failed: None while attempts go on each interval (or the client backs off
        already); once the outage is FAST_FOR old, the patient transport, an interval after the
        last attempt began."""
        now = self.clock()
        if self.down_since is None:  # a transport made anew (new keys) that has not connected yet
            self.down_since = now
        if self.patient or now - self.down_since < self.fast_for:
            return None
        return Plan(max(now, self._last_attempt + self.interval), patient=True)
