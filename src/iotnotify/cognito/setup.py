"""`iotnotify setup-cognito`: the IoT policy an authenticated Cognito identity needs on AWS IoT.

Keys of an authenticated identity (a login) are authorized by the identity pool's role and, as
well, by an AWS IoT policy attached to that identity: without one, AWS IoT refuses the connection.
This creates (or updates, as a new default version) one IoT policy scoped as the endpoint's keys
are, with the identity id (`${cognito-identity.amazonaws.com:sub}`) as the client id, and attaches
it to each identity given. Unauthenticated identities need no IoT policy."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from iotnotify.server.policy import arn_partition, identity_policy

DEFAULT_POLICY_NAME = "iotnotify-cognito"
MAX_VERSIONS = 5  # AWS IoT keeps at most five versions of a policy


@dataclass
class CognitoSetup:
    """What setup-cognito did (or, with dry_run, would do)."""

    policy_name: str
    policy: dict[str, Any]
    before: dict[str, Any] | None  # the policy's default version before, None if it did not exist
    attached: list[str] = field(default_factory=list)  # identities it was attached to now
    already: list[str] = field(default_factory=list)  # identities that had it

    @property
    def created(self) -> bool:
        return self.before is None

    @property
    def changed(self) -> bool:
        return self.before is not None and self.before != self.policy


def setup_cognito(iot: Any, sts: Any, *, region: str, topics: list[str], private_prefix: str | None,
                  identities: list[str], policy_name: str = DEFAULT_POLICY_NAME,
                  dry_run: bool = False) -> CognitoSetup:
    """Create or update the IoT policy, then attach it to each identity that lacks it."""
    caller = sts.get_caller_identity()
    policy = identity_policy(region, caller["Account"], topics, private_prefix, arn_partition(caller["Arn"]))
    try:
        before = json.loads(iot.get_policy(policyName=policy_name)["policyDocument"])
    except iot.exceptions.ResourceNotFoundException:
        before = None
    result = CognitoSetup(policy_name, policy, before)
    if not dry_run:
        if before is None:
            iot.create_policy(policyName=policy_name, policyDocument=json.dumps(policy))
        elif before != policy:
            _new_version(iot, policy_name, policy)
    for identity in identities:
        attached = iot.list_attached_policies(target=identity).get("policies", [])
        if any(p.get("policyName") == policy_name for p in attached):
            result.already.append(identity)
            continue
        if not dry_run:
            iot.attach_policy(policyName=policy_name, target=identity)
        result.attached.append(identity)
    return result


def _new_version(iot: Any, policy_name: str, policy: dict[str, Any]) -> None:
    """A new default version; the oldest other version goes first if five exist (AWS's limit)."""
    versions = iot.list_policy_versions(policyName=policy_name).get("policyVersions", [])
    if len(versions) >= MAX_VERSIONS:
        oldest = min((v for v in versions if not v.get("isDefaultVersion")), key=lambda v: int(v["versionId"]))
        iot.delete_policy_version(policyName=policy_name, policyVersionId=oldest["versionId"])
    iot.create_policy_version(policyName=policy_name, policyDocument=json.dumps(policy), setAsDefault=True)
