"""The keys endpoint's configuration, read once per container from environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from iotnotify.booleans import parse_bool
from iotnotify.server.policy import (
    PolicyError,
    check_policy_topic,
    dumps,
    session_policy,
)
from iotnotify.topics import TUTORIAL_TOPIC

DEFAULT_ROLE = "serverless-notifications"
DEFAULT_TOPICS = (TUTORIAL_TOPIC,)
MIN_LIFETIME, MAX_LIFETIME, DEFAULT_LIFETIME = 900, 3600, 3600
MAX_SESSION_POLICY = 2048  # characters, AWS STS's limit for a session policy

# environment variable -> what it sets (documented in docs/aws.md, "The keys endpoint on AWS")
ENVIRONMENT = {
    "IOTNOTIFY_ROLE": "name or ARN of the notifications role (default serverless-notifications)",
    "IOTNOTIFY_TOPICS": "comma-separated topics the keys may use, PREFIX/* for all below PREFIX/ "
                        "(default /serverless/pubsub)",
    "IOTNOTIFY_KEY_LIFETIME": "seconds the keys last, 900 to 3600 (default 3600)",
    "IOTNOTIFY_CORS_ORIGIN": "comma-separated origins of browser pages that may get keys (default *: any)",
    "IOTNOTIFY_PRIVATE_TOPIC_PREFIX": "if set, each set of keys may also receive on PREFIX/<clientId>",
    "IOTNOTIFY_ANY_CLIENT_ID": "true: keys may connect with any client id (for clients that pick their own)",
    "IOTNOTIFY_SHARED_SUBSCRIPTIONS": "false: keys may not subscribe to $share/NAME/FILTER (a smaller session "
                                      "policy: room for more topics; default true)",
    "IOTNOTIFY_LIFECYCLE_EVENTS": "true: keys may receive AWS IoT Core's lifecycle events, $aws/events/... "
                                  "(every client's connects, disconnects, subscriptions; default false)",
}


class ConfigInvalid(ValueError):
    """The endpoint's environment cannot work; every request answers 500 until it is fixed."""


@dataclass(frozen=True)
class EndpointConfig:
    """What keys the endpoint hands out."""

    role: str = DEFAULT_ROLE
    topics: tuple[str, ...] = DEFAULT_TOPICS
    lifetime: int = DEFAULT_LIFETIME
    cors_origins: tuple[str, ...] = ("*",)
    private_prefix: str | None = None
    any_client_id: bool = False
    shared_subscriptions: bool = True
    lifecycle_events: bool = False

    def __post_init__(self) -> None:
        try:
            for topic in self.topics:
                check_policy_topic(topic, below=True)
            if self.private_prefix is not None:
                check_policy_topic(self.private_prefix, "private topic prefix")
        except PolicyError as e:
            raise ConfigInvalid(str(e)) from None
        if not self.topics:
            raise ConfigInvalid("no topics configured")
        # the largest policy these settings can produce: longest partition, region, client id
        private = f"{self.private_prefix}/iotnotify-0123456789abcdef" if self.private_prefix else None
        size = len(dumps(session_policy("us-gov-west-1", "123456789012", "iotnotify-0123456789abcdef",
                                        list(self.topics), private, self.any_client_id, None,
                                        self.shared_subscriptions, self.lifecycle_events)))
        if size > MAX_SESSION_POLICY - 64:  # a margin for longer region names
            hint = " (without shared subscriptions it would be smaller)" if self.shared_subscriptions else ""
            raise ConfigInvalid(f"too many or too long topics: the session policy would be {size} characters, "
                                f"AWS allows {MAX_SESSION_POLICY}{hint}")

    def session_policy(self, region: str, account: str, client_id: str, topics: list[str], private: str | None,
                       partition_name: str | None) -> dict[str, object]:
        """The session policy of one set of keys under this configuration."""
        return session_policy(region, account, client_id, topics, private, self.any_client_id, partition_name,
                              self.shared_subscriptions, self.lifecycle_events)


def origins_of(text: str) -> tuple[str, ...]:
    """Origins from a comma-separated list (trailing slashes dropped, as browsers send none); `*` if empty."""
    return tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip()) or ("*",)


def load_config(env: Mapping[str, str] = os.environ) -> EndpointConfig:
    """Read IOTNOTIFY_* variables; raise ConfigInvalid naming the variable that is wrong."""
    topics = tuple(t.strip() for t in env.get("IOTNOTIFY_TOPICS", ",".join(DEFAULT_TOPICS)).split(",") if t.strip())
    raw_lifetime = env.get("IOTNOTIFY_KEY_LIFETIME", str(DEFAULT_LIFETIME))
    try:
        lifetime = int(raw_lifetime)
    except ValueError:
        raise ConfigInvalid(f"IOTNOTIFY_KEY_LIFETIME={raw_lifetime!r} is not a whole number of seconds") from None
    if not MIN_LIFETIME <= lifetime <= MAX_LIFETIME:
        raise ConfigInvalid(f"IOTNOTIFY_KEY_LIFETIME must be {MIN_LIFETIME} to {MAX_LIFETIME}, not {lifetime}")
    flags = {}
    for name, default in (("IOTNOTIFY_ANY_CLIENT_ID", ""), ("IOTNOTIFY_SHARED_SUBSCRIPTIONS", "true"),
                          ("IOTNOTIFY_LIFECYCLE_EVENTS", "")):
        try:
            flags[name] = parse_bool(env.get(name) or default)
        except ValueError as e:
            raise ConfigInvalid(f"{name}: {e}") from None
    try:
        return EndpointConfig(
            role=env.get("IOTNOTIFY_ROLE") or DEFAULT_ROLE,
            topics=topics,
            lifetime=lifetime,
            cors_origins=origins_of(env.get("IOTNOTIFY_CORS_ORIGIN", "")),
            private_prefix=env.get("IOTNOTIFY_PRIVATE_TOPIC_PREFIX") or None,
            any_client_id=flags["IOTNOTIFY_ANY_CLIENT_ID"],
            shared_subscriptions=flags["IOTNOTIFY_SHARED_SUBSCRIPTIONS"],
            lifecycle_events=flags["IOTNOTIFY_LIFECYCLE_EVENTS"],
        )
    except ConfigInvalid as e:
        raise ConfigInvalid(f"IOTNOTIFY_TOPICS or IOTNOTIFY_PRIVATE_TOPIC_PREFIX: {e}") from None
