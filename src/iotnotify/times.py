"""Times as the keys endpoint and our output write them: ISO 8601 in UTC with a Z. One home for
parsing and writing them (Python 3.11's fromisoformat reads the Z itself)."""

from __future__ import annotations

import datetime as dt


def parse_iso(value: str) -> dt.datetime:
    """An ISO 8601 time (a trailing Z allowed) as an aware datetime; a time without an offset is UTC.
    ValueError if it is not one."""
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def iso(moment: dt.datetime | float, milliseconds: bool = False) -> str:
    """`moment` (a datetime, or seconds since the epoch) as ISO 8601 in UTC with a Z: to the second,
    or to the millisecond."""
    if not isinstance(moment, dt.datetime):
        moment = dt.datetime.fromtimestamp(moment, dt.UTC)
    moment = moment.astimezone(dt.UTC)
    if milliseconds:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_utc() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)
