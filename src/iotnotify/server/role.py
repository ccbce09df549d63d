"""`iotnotify setup-role`: create (or update) the notifications role the keys endpoint assumes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from iotnotify.server.config import DEFAULT_ROLE
from iotnotify.server.policy import role_policy, trust_policy

ROLE_POLICY_NAME = "iot-notifications"


@dataclass(frozen=True)
class RoleResult:
    """What setup did: the role's ARN, whether it was created or updated, and who may assume it."""

    arn: str
    created: bool
    trusted: str


def setup_role(iam: Any, sts: Any, role_name: str = DEFAULT_ROLE, trusted: str | None = None) -> RoleResult:
    """Create the role (trusting the account, or `trusted`) with the IoT-only inline policy;
    if it exists, update its trust and inline policies instead."""
    identity = sts.get_caller_identity()
    arn_partition = identity["Arn"].split(":")[1]
    principal = trusted or f"arn:{arn_partition}:iam::{identity['Account']}:root"
    trust = json.dumps(trust_policy(principal))
    try:
        arn = iam.create_role(
            RoleName=role_name, AssumeRolePolicyDocument=trust, MaxSessionDuration=3600,
            Description="Temporary keys for serverless notifications: AWS IoT only (iotnotify)",
        )["Role"]["Arn"]
        created = True
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=trust)
        arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
        created = False
    iam.put_role_policy(RoleName=role_name, PolicyName=ROLE_POLICY_NAME, PolicyDocument=json.dumps(role_policy()))
    return RoleResult(arn, created, principal)
