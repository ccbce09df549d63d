"""Times as the keys endpoint and our output write them: ISO 8601 in UTC with a Z. One home for
parsing and writing them (Python 3.11's fromisoformat reads the Z itself)."""

from __future__ import annotations

import datetime as dt


def parse_iso(value: str) -> dt.datetime:
    """An ISO 8601 time (a trailing Z allowed) as an aware datetime; a time without an offset is UTC.
    ValueError if it is not one."""
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


_second: list[tuple[int, str]] = [(-1, "")]  # the last whole second written, and its text


def iso(moment: dt.datetime | float, milliseconds: bool = False) -> str:
    """`moment` (a datetime, or seconds since the epoch) as ISO 8601 in UTC with a Z: to the second,
    or to the millisecond. Seconds since the epoch to the millisecond (each message of `subscribe
    --json`) reuse the text of the second before: formatting a datetime per message cost a third
    of --json's time."""
    if milliseconds and isinstance(moment, (int, float)):
        second = int(moment // 1)
        micro = round((moment - second) * 1_000_000)  # as datetime.fromtimestamp rounds: half even
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        cached_second, text = _second[0]
        if cached_second != second:
            text = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            _second[0] = (second, text)
        return f"{text}{micro // 1000:03d}Z"
    if not isinstance(moment, dt.datetime):
        moment = dt.datetime.fromtimestamp(moment, dt.UTC)
    moment = moment.astimezone(dt.UTC)
    if milliseconds:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_utc() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


MAX_SECONDS = 365 * 24 * 3600.0
"""The longest time any option takes (a timeout, a delay, an idle time): a year. Longer is never
meant, and some (infinity, 1e300) break the waits they would go to (OverflowError)."""


def parse_duration(text: str) -> float:
    """'90', '90s', '10m', '1h', '1d' (as ssh's ControlPersist and systemd write them) in seconds;
    ValueError if it is not one, or not positive and at most MAX_SECONDS."""
    value = text.strip().lower()
    unit = DURATION_UNITS.get(value[-1:], 0)
    seconds = float(value[:-1] if unit else value) * (unit or 1)
    if not 0 < seconds <= MAX_SECONDS:  # NaN fails this too
        raise ValueError(f"{text!r} is not a positive duration of at most a year")
    return seconds
