"""What keys from our endpoint say they allow (`topics`, `privateTopic`, `clientId`): to refuse at
once what AWS IoT Core would refuse, and to say what the keys allow when the broker refuses.

Keys from the tutorial's endpoint say nothing of the kind; then only the broker decides. So does a
broker that does not play by AWS IoT Core's rules (`iotnotify local --permissive`).
"""

from __future__ import annotations

from dataclasses import dataclass

from iotnotify.errors import Refused
from iotnotify.iam import matches
from iotnotify.keys.model import TemporaryKeys
from iotnotify.topics import EVENTS, shared_parts


@dataclass(frozen=True)
class Allowance:
    """The topics the keys' session policy names (exact, or `PREFIX/*`), their private topic
    (subscribe and receive only) and the client id they are for."""

    topics: tuple[str, ...]
    private_topic: str | None = None
    client_id: str | None = None
    lifecycle_events: bool = False  # and AWS IoT Core's lifecycle events, $aws/events/...
    shared: bool = True  # and their filters in shared subscriptions, $share/NAME/FILTER

    @classmethod
    def of(cls, keys: TemporaryKeys) -> Allowance | None:
        """The allowance the keys state, or None if they state none or no AWS rules apply (a
        permissive local stack, another broker)."""
        topics = keys.raw.get("topics")
        if not keys.aws_rules:
            return None
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            return None
        private, client_id = keys.raw.get("privateTopic"), keys.raw.get("clientId")
        return cls(tuple(topics), private if isinstance(private, str) else None,
                   client_id if isinstance(client_id, str) else None, keys.raw.get("lifecycleEvents") is True,
                   keys.raw.get("sharedSubscriptions") is not False)

    def may_publish(self, topic: str) -> bool:
        return any(matches(allowed, topic) for allowed in self.topics)

    def may_subscribe(self, topic_filter: str) -> bool:
        """As iot:Subscribe on `topicfilter/FILTER`: MQTT wildcards are plain characters there. A
        shared subscription's FILTER in any share (the session policy allows `$share/*/` before each
        of its topic filters)."""
        parts = shared_parts(topic_filter)
        if parts and not self.shared:
            return False
        inner = parts[1] if parts else topic_filter
        readable = self.topics + ((self.private_topic,) if self.private_topic else ()) + (
            (EVENTS,) if self.lifecycle_events else ())
        return any(matches(allowed, inner) for allowed in readable)

    def describe(self) -> str:
        """'the keys allow topics a, b/*; and subscribing to c'."""
        text = "the keys allow " + ("topics " if len(self.topics) > 1 else "topic ") + ", ".join(self.topics)
        text += f"; and subscribing to {self.private_topic}" if self.private_topic else ""
        text += "" if self.shared else "; no shared subscriptions"
        return text + (f"; and the lifecycle events {EVENTS}" if self.lifecycle_events else "")


def describe_client(keys: TemporaryKeys) -> str:
    """What client ids the keys are for, for the end of an error message ('' if they do not say)."""
    owner = keys.raw.get("clientId")
    return f" (the keys are for client id {owner} and ids below it, {owner}-...)" if isinstance(owner, str) else ""


def describe(keys: TemporaryKeys | None) -> str:
    """What the keys allow, for the end of an error message ('' if they do not say)."""
    allowance = Allowance.of(keys) if keys is not None else None
    return f" ({allowance.describe()})" if allowance else ""


def check_publish(keys: TemporaryKeys, topic: str) -> None:
    """Refused if the keys say they may not publish to `topic`."""
    allowance = Allowance.of(keys)
    if allowance is not None and not allowance.may_publish(topic):
        raise Refused(f"not allowed: the keys may not publish to {topic!r} ({allowance.describe()})")


def subscribe_refusals(keys: TemporaryKeys, filters: list[str]) -> dict[str, Refused]:
    """The filters the keys say they may not subscribe to, each with its refusal."""
    allowance = Allowance.of(keys)
    if allowance is None:
        return {}
    return {f: Refused(f"not allowed: the keys may not subscribe to {f!r} ({allowance.describe()})")
            for f in filters if not allowance.may_subscribe(f)}
