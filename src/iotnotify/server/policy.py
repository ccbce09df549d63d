"""Session policies that narrow temporary keys to one client id and a few topics. Pure functions.

IAM reads `*` and `?` in a resource ARN as wildcards and `${...}` as a policy variable, so a topic
must be checked before it goes into a policy: only the characters below are accepted.
"""

from __future__ import annotations

import json
import re

SAFE_TOPIC = re.compile(r"[A-Za-z0-9_./:=@-]+")
SAFE_CLIENT_ID = re.compile(r"[A-Za-z0-9_.:-]+")
MAX_TOPIC_BYTES = 256


class PolicyError(ValueError):
    """A topic, prefix or client id that must not reach a policy."""


def check_policy_topic(topic: str, what: str = "topic") -> str:
    """Refuse a topic that could widen a policy (wildcards, variables, odd characters)."""
    if not topic or len(topic.encode()) > MAX_TOPIC_BYTES:
        raise PolicyError(f"{what} must be 1 to {MAX_TOPIC_BYTES} bytes")
    if not SAFE_TOPIC.fullmatch(topic):
        bad = " ".join(repr(c) for c in sorted({c for c in topic if not SAFE_TOPIC.fullmatch(c)}))
        raise PolicyError(f"{what} {topic!r} cannot go into a policy (not allowed: {bad})")
    return topic


def check_client_id(client_id: str) -> str:
    """Refuse a client id that could widen the iot:Connect resource."""
    if not SAFE_CLIENT_ID.fullmatch(client_id) or len(client_id) > 128:
        raise PolicyError(f"client id {client_id!r} cannot go into a policy")
    return client_id


def partition(region: str) -> str:
    """The ARN partition of a region."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def session_policy(region: str, account: str, client_id: str, topics: list[str],
                   private_topic: str | None = None, any_client_id: bool = False) -> dict[str, object]:
    """The session policy for one set of keys: connect as `client_id` (or `client_id-...`, or any id
    if `any_client_id`); publish, subscribe and receive on `topics`; and only subscribe and receive
    on `private_topic` if given."""
    check_client_id(client_id)
    for topic in topics:
        check_policy_topic(topic)
    base = f"arn:{partition(region)}:iot:{region}:{account}"
    # the client id, and the ids below it (`<id>-...`): every process sharing cached keys needs its own
    clients = [f"{base}:client/*"] if any_client_id else [f"{base}:client/{client_id}", f"{base}:client/{client_id}-*"]
    statements: list[dict[str, object]] = [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": clients},
        {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"],
         "Resource": [f"{base}:topic/{t}" for t in topics]},
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": [f"{base}:topicfilter/{t}" for t in topics]},
    ]
    if private_topic is not None:
        check_policy_topic(private_topic, "private topic")
        statements += [
            {"Effect": "Allow", "Action": "iot:Receive", "Resource": f"{base}:topic/{private_topic}"},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"{base}:topicfilter/{private_topic}"},
        ]
    return {"Version": "2012-10-17", "Statement": statements}


def role_policy() -> dict[str, object]:
    """The notifications role's own policy (the tutorial's): IoT only. Keys get less, by session policy."""
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Action": ["iot:Connect", "iot:Subscribe", "iot:Publish", "iot:Receive"],
        "Resource": "*",
    }]}


def trust_policy(principal_arn: str) -> dict[str, object]:
    """Who may assume the notifications role: `principal_arn` (the account root by default)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": principal_arn}, "Action": "sts:AssumeRole",
    }]}


def dumps(policy: dict[str, object]) -> str:
    """Compact JSON, as STS counts a session policy's size."""
    return json.dumps(policy, separators=(",", ":"))
