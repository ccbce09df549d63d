"""`iotnotify setup-role`: create (or update) the notifications role the keys endpoint assumes.

Run again on an existing role, it changes no more than it must: the trust policy is kept unless
`trusted` is given, other policies attached to the role (which would give its keys more than IoT)
are refused unless `force`, and the inline policy is scoped to one region and account (and to
topics when given), as the SAM template's role is. What changed is returned as before/after pairs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from iotnotify.server.config import DEFAULT_ROLE
from iotnotify.server.policy import arn_partition, role_policy, trust_policy

ROLE_POLICY_NAME = "iot-notifications"


class OtherPolicies(Exception):
    """The role has policies besides ours: its keys could do more than use IoT."""

    def __init__(self, role_name: str, others: list[str]) -> None:
        super().__init__(f"role {role_name} has other policies ({', '.join(others)}), which its keys would get "
                         "besides IoT: detach them, or keep them with --force")
        self.others = others


@dataclass(frozen=True)
class Change:
    """One policy document as it was (None: absent) and as it is now."""

    name: str
    before: dict[str, Any] | None
    after: dict[str, Any]


@dataclass(frozen=True)
class RoleResult:
    """What setup did (or, dry, would do): the role's ARN, whether it was created, who may assume
    it, its inline policy, the documents that changed, and the other policies left in place."""

    arn: str
    created: bool
    trusted: list[str]
    policy: dict[str, Any]
    changes: list[Change] = field(default_factory=list)
    others: list[str] = field(default_factory=list)


def principals(trust: dict[str, Any]) -> list[str]:
    """Who a trust policy lets assume the role: its allowed principals (`AWS`, `Service`...), as written."""
    found: list[str] = []
    statements = trust.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal", {})
        if not isinstance(principal, dict):
            found.append(str(principal))  # "*": anyone
            continue
        for kind, value in principal.items():
            found += [f"{v}" if kind == "AWS" else f"{kind}: {v}" for v in (value if isinstance(value, list) else [value])]
    return found


def policy_document(value: Any) -> dict[str, Any]:
    """A policy document as IAM returns it: a dict (boto3 decodes it) or URL-encoded JSON."""
    return value if isinstance(value, dict) else json.loads(unquote(value))


def setup_role(iam: Any, sts: Any, role_name: str = DEFAULT_ROLE, trusted: str | None = None, *,
               region: str, topics: Sequence[str] = (), private_prefix: str | None = None,
               force: bool = False, dry_run: bool = False) -> RoleResult:
    """Create the role (trusting the account, or `trusted`) with the IoT-only inline policy for
    `region` (and `topics`); if it exists, keep its trust unless `trusted` is given, refuse
    (OtherPolicies) other attached or inline policies unless `force`, and update the inline policy.
    With `dry_run`, change nothing and say what would change."""
    identity = sts.get_caller_identity()
    partition, account = arn_partition(identity["Arn"]), identity["Account"]
    policy = role_policy(region, account, list(topics), private_prefix, partition)
    wanted_trust = trust_policy(trusted or f"arn:{partition}:iam::{account}:root")
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        role = None
    if role is None:
        arn = f"arn:{partition}:iam::{account}:role/{role_name}"
        if not dry_run:
            arn = iam.create_role(
                RoleName=role_name, AssumeRolePolicyDocument=json.dumps(wanted_trust), MaxSessionDuration=3600,
                Description="Temporary keys for serverless notifications: AWS IoT only (iotnotify)",
            )["Role"]["Arn"]
            iam.put_role_policy(RoleName=role_name, PolicyName=ROLE_POLICY_NAME, PolicyDocument=json.dumps(policy))
        return RoleResult(arn, True, principals(wanted_trust), policy,
                          [Change("trust policy", None, wanted_trust), Change(f"inline policy {ROLE_POLICY_NAME}",
                                                                             None, policy)])
    others = [f"managed {p['PolicyArn']}" for p in _all(iam, "list_attached_role_policies", "AttachedPolicies",
                                                           role_name)]
    others += [f"inline {name}" for name in _all(iam, "list_role_policies", "PolicyNames", role_name)
               if name != ROLE_POLICY_NAME]
    if role.get("PermissionsBoundary"):
        others.append(f"permissions boundary {role['PermissionsBoundary'].get('PermissionsBoundaryArn')}")
    if others and not force:
        raise OtherPolicies(role_name, others)
    changes = []
    trust = policy_document(role["AssumeRolePolicyDocument"])
    if trusted is not None and trust != wanted_trust:
        changes.append(Change("trust policy", trust, wanted_trust))
        trust = wanted_trust
        if not dry_run:
            iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=json.dumps(wanted_trust))
    changed = inline_policy(iam, role_name, ROLE_POLICY_NAME, policy, dry_run, f"inline policy {ROLE_POLICY_NAME}")
    changes += [changed] if changed is not None else []
    return RoleResult(role["Arn"], False, principals(trust), policy, changes, others)


def inline_policy(iam: Any, role_name: str, name: str, policy: dict[str, Any], dry_run: bool,
                  label: str) -> Change | None:
    """Make the role's inline policy `name` `policy` (unless `dry_run`); the change (`label`,
    before, after), or None if it was that already."""
    try:
        current = policy_document(iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])
    except iam.exceptions.NoSuchEntityException:
        current = None
    if current == policy:
        return None
    if not dry_run:
        iam.put_role_policy(RoleName=role_name, PolicyName=name, PolicyDocument=json.dumps(policy))
    return Change(label, current, policy)


def _all(iam: Any, operation: str, key: str, role_name: str) -> list[Any]:
    """Every item of a paginated IAM listing for one role."""
    return [item for page in iam.get_paginator(operation).paginate(RoleName=role_name) for item in page[key]]
