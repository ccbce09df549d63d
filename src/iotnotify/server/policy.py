"""Session policies that narrow temporary keys to one client id and a few topics. Pure functions.

IAM reads `*` and `?` in a resource ARN as wildcards and `${...}` as a policy variable, so a topic
must be checked before it goes into a policy: only the characters below are accepted, and `*` only
as the last level of a configured topic (`alerts/*`: every topic below `alerts/`), never from a request.
"""

from __future__ import annotations

import json
import re

from iotnotify.topics import EVENTS

SAFE_TOPIC = re.compile(r"[A-Za-z0-9_./:=@-]+")
BELOW = "/*"  # a configured topic ending so covers every topic below it
IOT_ACTIONS = ("iot:Connect", "iot:Subscribe", "iot:Publish", "iot:RetainPublish", "iot:Receive")
SAFE_CLIENT_ID = re.compile(r"[A-Za-z0-9_.:-]+")
SHARED = "$share/*/"  # before a topic filter in a resource: its shared subscriptions, in any share
MAX_TOPIC_BYTES = 256


class PolicyError(ValueError):
    """A topic, prefix or client id that must not reach a policy."""


def check_policy_topic(topic: str, what: str = "topic", below: bool = False) -> str:
    """Refuse a topic that could widen a policy (wildcards, variables, odd characters); with `below`
    (a configured topic, never a request's), `PREFIX/*` stands for every topic below PREFIX/."""
    if not topic or len(topic.encode()) > MAX_TOPIC_BYTES:
        raise PolicyError(f"{what} must be 1 to {MAX_TOPIC_BYTES} bytes")
    exact = topic[: -len(BELOW)] if below and topic.endswith(BELOW) else topic
    if not exact or not SAFE_TOPIC.fullmatch(exact):
        bad = " ".join(repr(c) for c in sorted({c for c in exact if not SAFE_TOPIC.fullmatch(c)}) or ["*"])
        where = "; * only as the last level, PREFIX/*" if below and "*" in exact else ""
        raise PolicyError(f"{what} {topic!r} cannot go into a policy (not allowed: {bad}{where})")
    return topic



def check_client_id(client_id: str) -> str:
    """Refuse a client id that could widen the iot:Connect resource."""
    if not SAFE_CLIENT_ID.fullmatch(client_id) or len(client_id) > 128:
        raise PolicyError(f"client id {client_id!r} cannot go into a policy")
    return client_id


# botocore's data/partitions.json, in its order (the first match wins; a test keeps them in step).
# Where the caller's ARN is known (the keys endpoint, setup-role), its partition is used instead.
PARTITIONS = (
    ("aws", r"(us|eu|ap|sa|ca|me|af|il|mx)-\w+-\d+"),
    ("aws-cn", r"cn-\w+-\d+"),
    ("aws-eusc", r"eusc-(de)-\w+-\d+"),
    ("aws-iso", r"us-iso-\w+-\d+"),
    ("aws-iso-b", r"us-isob-\w+-\d+"),
    ("aws-iso-e", r"eu-isoe-\w+-\d+"),
    ("aws-iso-f", r"us-isof-\w+-\d+"),
    ("aws-us-gov", r"us-gov-\w+-\d+"),
)


def partition(region: str) -> str:
    """The ARN partition of a region (`aws` for a name no partition claims, as botocore does)."""
    return next((name for name, pattern in PARTITIONS if re.fullmatch(pattern, region)), "aws")


def arn_partition(arn: str) -> str:
    """The partition of an ARN (`arn:PARTITION:service:...`)."""
    return arn.split(":")[1]


def iot_arn(region: str, account: str, resource: str = "*", partition_name: str | None = None) -> str:
    """An AWS IoT resource ARN: `client/ID`, `topic/T`, `topicfilter/F`, or `*` for all of them."""
    return f"arn:{partition_name or partition(region)}:iot:{region}:{account}:{resource}"


def _filters(base: str, topics: list[str], shared: bool = True) -> list[str]:
    """iot:Subscribe's resources for `topics`: each as a filter, and with `shared` in shared
    subscriptions (`topicfilter/$share/NAME/FILTER`, as AWS's SDK samples authorize them; the
    developer guide shows no policy). IAM's `*` may match a '/' there: a share name cannot hold
    one, and iot:Receive still decides on each message's topic."""
    return [f"{base}:topicfilter/{prefix}{t}" for t in topics for prefix in ("", SHARED)[: 2 if shared else 1]]


def session_policy(region: str, account: str, client_id: str, topics: list[str],
                   private_topic: str | None = None, any_client_id: bool = False,
                   partition_name: str | None = None, shared: bool = True, events: bool = False) -> dict[str, object]:
    """The session policy for one set of keys: connect as `client_id` (or `client_id-...`, or any id
    if `any_client_id`); publish (retained too), subscribe and receive on `topics`; and only
    subscribe and receive on `private_topic` if given. A topic `PREFIX/*` covers every topic (and
    filter, wildcards included) below PREFIX/. With `shared`, its filters in shared subscriptions
    too; with `events`, AWS IoT Core's lifecycle events (`$aws/events/...`) may be received."""
    check_client_id(client_id)
    for topic in topics:
        check_policy_topic(topic, below=True)
    base = f"arn:{partition_name or partition(region)}:iot:{region}:{account}"
    # the client id, and the ids below it (`<id>-...`): every process sharing cached keys needs its own
    clients = [f"{base}:client/*"] if any_client_id else [f"{base}:client/{client_id}", f"{base}:client/{client_id}-*"]
    statements: list[dict[str, object]] = [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": clients},
        {"Effect": "Allow", "Action": ["iot:Publish", "iot:RetainPublish", "iot:Receive"],
         "Resource": [f"{base}:topic/{t}" for t in topics]},
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": _filters(base, topics, shared)},
    ]
    if private_topic is not None:
        check_policy_topic(private_topic, "private topic")
        statements += [
            {"Effect": "Allow", "Action": "iot:Receive", "Resource": f"{base}:topic/{private_topic}"},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": _filters(base, [private_topic], shared)},
        ]
    if events:
        statements += [
            {"Effect": "Allow", "Action": "iot:Receive", "Resource": f"{base}:topic/{EVENTS}"},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"{base}:topicfilter/{EVENTS}"},
        ]
    return {"Version": "2012-10-17", "Statement": statements}


COGNITO_SUB = "${cognito-identity.amazonaws.com:sub}"  # IAM's and AWS IoT's variable: the identity id


def identity_policy(region: str, account: str, topics: list[str], private_prefix: str | None = None,
                    partition_name: str | None = None) -> dict[str, object]:
    """What a Cognito identity's keys may do, as a policy for all identities (the SAM template's
    identity pool role, and the AWS IoT policy setup-cognito attaches to authenticated ones): the
    session policy's, with the identity id as the client id and PREFIX/<identity id> as the private topic."""
    for topic in topics:
        check_policy_topic(topic, below=True)
    base = f"arn:{partition_name or partition(region)}:iot:{region}:{account}"
    statements: list[dict[str, object]] = [
        {"Effect": "Allow", "Action": "iot:Connect",
         "Resource": [f"{base}:client/{COGNITO_SUB}", f"{base}:client/{COGNITO_SUB}-*"]},
        {"Effect": "Allow", "Action": ["iot:Publish", "iot:RetainPublish", "iot:Receive"],
         "Resource": [f"{base}:topic/{t}" for t in topics]},
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": _filters(base, topics)},
    ]
    if private_prefix:
        prefix = check_policy_topic(private_prefix.rstrip("/"), "private topic prefix")
        statements.append({"Effect": "Allow", "Action": ["iot:Subscribe", "iot:Receive"],
                           "Resource": [f"{base}:topic/{prefix}/{COGNITO_SUB}",
                                        *_filters(base, [f"{prefix}/{COGNITO_SUB}"])]})
    return {"Version": "2012-10-17", "Statement": statements}


def role_policy(region: str | None = None, account: str | None = None, topics: list[str] | None = None,
                private_prefix: str | None = None, partition_name: str | None = None) -> dict[str, object]:
    """The notifications role's own policy (the tutorial's, plus iot:RetainPublish for retained
    messages): IoT only, in `region` and `account` when given (as the SAM template's role), and
    only on `topics` (and below `private_prefix`, to subscribe and receive) when given. Keys get
    less, by session policy."""
    if not (region and account):
        return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": list(IOT_ACTIONS), "Resource": "*"}]}
    if not topics:
        return {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": list(IOT_ACTIONS), "Resource": iot_arn(region, account, "*", partition_name),
        }]}
    for topic in topics:
        check_policy_topic(topic, below=True)
    base = f"arn:{partition_name or partition(region)}:iot:{region}:{account}"
    private = [f"{check_policy_topic(private_prefix.rstrip('/'), 'private topic prefix')}/*"] if private_prefix else []
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{base}:client/*"},
        {"Effect": "Allow", "Action": ["iot:Publish", "iot:RetainPublish"],
         "Resource": [f"{base}:topic/{t}" for t in topics]},
        {"Effect": "Allow", "Action": "iot:Receive", "Resource": [f"{base}:topic/{t}" for t in [*topics, *private]]},
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": _filters(base, [*topics, *private])},
    ]}


def trust_policy(principal_arn: str) -> dict[str, object]:
    """Who may assume the notifications role: `principal_arn` (the account root by default)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": principal_arn}, "Action": "sts:AssumeRole",
    }]}


def dumps(policy: dict[str, object]) -> str:
    """Compact JSON, as STS counts a session policy's size."""
    return json.dumps(policy, separators=(",", ":"))
