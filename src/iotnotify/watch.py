"""`watch FILTER --silence DURATION`: a stall detector. A silence is DURATION without a message on
the filters (or, `per_topic`, on one topic heard before); each is said once, and the next message
ends it ("resumed"). A crash says itself (a will, a disconnect event: `presence`); a stall says
nothing, which is what this listens for.

Memory is bounded: at most MAX_TOPICS topics are watched one by one; a new one past that takes
the place of the one silent longest, or, if none is silent, is not watched (said once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_TOPICS = 10_000
WHOLE = ""  # the key of the filters as a whole
VARIABLES = ("IOTNOTIFY_EVENT", "IOTNOTIFY_TOPIC", "IOTNOTIFY_SILENT_SECONDS", "IOTNOTIFY_LAST_TIME",
             "IOTNOTIFY_SILENCES", "IOTNOTIFY_SILENT_TOPICS")  # what CMD learns of the silences (environment)


@dataclass(frozen=True)
class Event:
    """A silence that began (`silent`: nothing for `seconds` since `last`) or ended (`resumed`
    after `seconds`), on `topic` (WHOLE: the filters as a whole); `last` is the epoch time of the
    message before it (None: none since the watch began)."""

    kind: str
    topic: str
    seconds: float
    last: float | None

    def record(self) -> dict[str, object]:
        from iotnotify.times import iso

        return {"event": self.kind, "topic": self.topic or None, "seconds": round(self.seconds, 3),
                "last": iso(self.last, milliseconds=True) if self.last is not None else None}


class Silences:
    """When each watched key (WHOLE, or each topic with `per_topic`) was last heard from, and
    which are silent now. `heard` takes a message's topic; `due` says the silences that began.
    Durations on `clock` (monotonic: a clock set back or a machine resumed makes no silence);
    `wall` dates them."""

    def __init__(self, silence: float, per_topic: bool = False, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.silence, self.per_topic, self.clock, self.wall = silence, per_topic, clock, wall
        self.full = False  # topics past MAX_TOPICS came while none was silent: those are not watched
        self._heard: dict[str, float] = {WHOLE: clock()}  # key -> when last heard (or the start), oldest first
        self._last: dict[str, float | None] = {WHOLE: None}  # key -> the wall time of its last message
        self._silent: set[str] = set()

    def heard(self, topic: str) -> list[Event]:
        """A message came on `topic`: the silences it ends (WHOLE's, and its topic's)."""
        now, wall = self.clock(), self.wall()
        keys = [WHOLE]
        if self.per_topic:
            if topic in self._heard or len(self._heard) <= MAX_TOPICS or self._forget_a_silent_one():
                keys.append(topic)
            else:
                self.full = True
        ended = []
        for key in keys:
            if key in self._silent:
                self._silent.discard(key)
                ended.append(Event("resumed", key, now - self._heard[key], self._last[key]))
            self._heard.pop(key, None)
            self._heard[key] = now  # to the end: the order is the order heard
            self._last[key] = wall
        return ended

    def _forget_a_silent_one(self) -> bool:
        """Make room for a new topic: forget the one silent longest (False if none is silent)."""
        for key in self._heard:
            if key in self._silent and key != WHOLE:
                del self._heard[key], self._last[key]
                self._silent.discard(key)
                return True
        return False

    def due(self) -> list[Event]:
        """The silences that began since the last look, each once: keys not heard from for `silence`
        seconds (with `per_topic`, the topics; the filters as a whole only while nothing came)."""
        now = self.clock()
        began = []
        for key, last in self._heard.items():
            if now - last < self.silence:
                break  # the rest were heard later
            if key in self._silent or self._ignored(key):
                continue
            self._silent.add(key)
            began.append(Event("silent", key, now - last, self._last[key]))
        return began

    def _ignored(self, key: str) -> bool:
        """WHOLE, with `per_topic`, once a message came: then the topics are watched, not the whole."""
        return self.per_topic and key == WHOLE and self._last[WHOLE] is not None

    def wait(self) -> float:
        """Seconds until the next silence could begin (at most `silence`)."""
        now = self.clock()
        for key, last in self._heard.items():
            if key not in self._silent and not self._ignored(key):
                return max(last + self.silence - now, 0.0)
        return self.silence


def environment(began: list[Event], inherited: dict[str, str]) -> dict[str, str | bytes]:
    """CMD's environment for the silences that began together: `inherited` without stale
    VARIABLES, and the first silence's (with several, how many and every topic, a line each)."""
    from iotnotify.on import env_value
    from iotnotify.times import iso

    event = began[0]
    env: dict[str, str | bytes] = {k: v for k, v in inherited.items() if k not in VARIABLES}
    env.update({"IOTNOTIFY_EVENT": "silent", "IOTNOTIFY_SILENT_SECONDS": f"{event.seconds:.0f}",
                "IOTNOTIFY_LAST_TIME": iso(event.last, milliseconds=True) if event.last is not None else "",
                "IOTNOTIFY_SILENCES": str(len(began))})
    if event.topic:
        env["IOTNOTIFY_TOPIC"] = env_value(event.topic)
        env["IOTNOTIFY_SILENT_TOPICS"] = env_value("\n".join(e.topic for e in began))
    return env
