"""When to connect again under AWS IoT Core's rules, so that a short outage stays short.

AWS IoT Core takes one CONNECT a second per client id, and awscrt's client can only back off
exponentially from a minimum of a second (1, 2, 4, 8 s...): a 5-s outage became 7 s, a 20-s one
31 s, and a connection AWS ends (at 24 hours) waited a second before trying again
(bench/recovery.py). The session (session.py) follows this plan instead, with a new transport in
place of the one whose client would wait, started at the plan's time:

- a connection that ends is made again at once (a second after its CONNECT if that was sooner);
- for FAST_FOR seconds of an outage, an attempt each second (awscrt's client with its minimum and
  maximum delay both the second), which finds the network within a second of its return;
- after that, a client that backs off as awscrt does, from two seconds.

The broker asking for less (a DISCONNECT or CONNACK saying server busy, quota exceeded, connection
rate exceeded) gets the backing-off client at once, and waits before it; so does a connection that
keeps ending within STABLE seconds of being made (a flapping one) once FAST_FOR has gone by, those
waits doubling (2, 4, 8 s... up to the longest) while the outage lasts. An outage ends with a
connection that lives STABLE seconds.

A pure plan: it is told what happened and says when to start which transport (Plan); the session
makes it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

FAST_FOR = 20.0  # s of an outage with an attempt each interval, before backing off
STABLE = 10.0  # s a connection lives for its outage to be over: a flapping one ends sooner (aws-c-mqtt
# resets its backoff after 30 s; a broker ending connections on schedule, as the soak's every 20 s, is not flapping)
THROTTLED = {0x89, 0x97, 0x9F}  # reasons that ask for less: server busy, quota exceeded, rate exceeded


@dataclass(frozen=True)
class Plan:
    """Start a new transport at `at` (time.monotonic()); `patient`: one whose client backs off."""

    at: float
    patient: bool


class Retry:
    """The plan of one session; `patient` says what its current transport is (the session sets it)."""

    def __init__(self, interval: float, longest: float, fast_for: float = FAST_FOR,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval  # s between CONNECTs with one client id, at least (AWS: a second)
        self.longest = max(longest, self.backoff)  # s a patient client waits at most
        self.fast_for = fast_for
        self.clock = clock
        self.patient = False
        self.down_since: float | None = None  # when the outage began; None: none yet, or it is over
        self._up_since: float | None = None  # when the last connection was made, while it lasts
        self._last_attempt = float("-inf")
        self._wait = 0.0  # the last wait before a patient start in this outage (doubled each time)

    @property
    def backoff(self) -> float:
        """The first delay of a patient transport's client (it doubles from there)."""
        return 2 * self.interval

    def attempted(self) -> None:
        """A connection attempt began."""
        self._last_attempt = self.clock()

    def connected(self) -> None:
        self._up_since = self._last_attempt = self.clock()  # its CONNECT went out by now: count from here

    def lost(self, code: int = 0) -> Plan:
        """The connection ended (`code`: the broker's DISCONNECT reason, 0 if none)."""
        now = self.clock()
        up, self._up_since = self._up_since, None
        if self.down_since is None or (up is not None and now - up >= STABLE):
            self.down_since, self._wait = now, 0.0  # a new outage
        earliest = max(now, self._last_attempt + self.interval)
        if code in THROTTLED or now - self.down_since >= self.fast_for:
            return Plan(earliest + self._longer(), patient=True)
        return Plan(earliest, patient=False)

    def failed(self, code: int = 0) -> Plan | None:
        """An attempt failed (`code`: its CONNACK's reason, 0 if none): None while attempts go on
        each interval (or the client backs off already); the patient transport once the outage is
        FAST_FOR old, an interval after the last attempt began (later if the broker asked for less)."""
        now = self.clock()
        self._up_since = None
        if code:  # a CONNACK came: its CONNECT went out later than the attempt began
            self._last_attempt = now
        if self.down_since is None:  # a transport made anew (new keys) that has not connected yet
            self.down_since, self._wait = now, 0.0
        earliest = max(now, self._last_attempt + self.interval)
        if code in THROTTLED:
            return Plan(earliest + self._longer(), patient=True)
        if self.patient or now - self.down_since < self.fast_for:
            return None
        return Plan(earliest, patient=True)

    def _longer(self) -> float:
        """The next wait before a patient start in this outage: 2, 4, 8 intervals... up to the longest."""
        self._wait = min(max(self._wait * 2, self.backoff), self.longest)
        return self._wait
