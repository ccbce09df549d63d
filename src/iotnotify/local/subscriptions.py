"""One connection's subscriptions, as the local gateway counts and matches them for AWS IoT Core's
rules: the filters asked (50 a connection, counted as they are asked, forgotten if the broker
refuses one), those granted with their QoS (a persistent session's record: local/account.py), and
the SUBACKs awaited, into which the gateway's own refusals go back in their places."""

from __future__ import annotations

from iotnotify import limits
from iotnotify.local import packets as mqtt
from iotnotify.local.answers import FAILURE
from iotnotify.topics import filter_matches, shared_parts


class Subscriptions:
    """The filters of one connection."""

    def __init__(self) -> None:
        self.asked: set[str] = set()  # filters subscribed or being subscribed
        self.granted: dict[str, int] = {}  # filter -> the QoS the broker granted
        self._pending: dict[int, tuple[list[int | None], list[str]]] = {}  # packet id -> our codes, forwarded

    def __contains__(self, topic_filter: str) -> bool:
        return topic_filter in self.asked

    def __len__(self) -> int:
        return len(self.asked)

    def full(self, topic_filter: str) -> bool:
        """Whether asking `topic_filter` too would be over AWS's subscriptions per connection."""
        return topic_filter not in self.asked and len(self.asked) >= limits.MAX_SUBSCRIPTIONS

    def ask(self, topic_filter: str) -> None:
        self.asked.add(topic_filter)

    def forwarded(self, packet_id: int, codes: list[int | None], filters: list[str]) -> None:
        """A SUBSCRIBE went to the broker with `filters`; `codes` are ours (None where it answers)."""
        self._pending[packet_id] = (codes, filters)

    def answered(self, suback: mqtt.Suback) -> tuple[list[int], list[str]] | None:
        """The broker's SUBACK: (the codes for the client, ours in their places; the filters
        granted), or None for a SUBACK the gateway did not forward a SUBSCRIBE for."""
        pending = self._pending.pop(suback.packet_id, None)
        if pending is None:
            return None
        ours, forwarded = pending
        granted = []
        for topic_filter, code in zip(forwarded, suback.codes, strict=False):
            if code >= FAILURE:
                self.asked.discard(topic_filter)
            else:
                granted.append(topic_filter)
                self.granted[topic_filter] = code
        answers = iter(suback.codes)
        return [next(answers, FAILURE) if c is None else c for c in ours], granted

    def dropped(self, filters: list[str]) -> None:
        """The client unsubscribed from `filters`."""
        self.asked.difference_update(filters)
        for topic_filter in filters:
            self.granted.pop(topic_filter, None)

    def parent_only(self, topic: str) -> bool:
        """Whether `topic` reaches this connection only through filters `topic/#`, which AWS IoT
        Core does not match to their parent ("sensor/# receives ... sensor/ ... but not messages
        published to sensor": the developer guide's MQTT page), where MQTT (and Mosquitto) do."""
        filters = [parts[1] if (parts := shared_parts(f)) else f for f in self.asked]
        matching = [f for f in filters if filter_matches(f, topic)]
        return bool(matching) and all(f == f"{topic}/#" for f in matching)
