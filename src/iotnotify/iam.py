"""IAM policy evaluation for AWS IoT actions, as AWS decides them for SigV4 connections. Pure functions.

The rules that matter here (IAM User Guide: "Policy evaluation logic", "IAM JSON policy elements:
Action, NotAction, Resource, NotResource"; AWS IoT Developer Guide: "AWS IoT Core policy actions"):

- An explicit Deny in any policy wins; otherwise an Allow is needed; otherwise the action is denied.
- Keys issued with a session policy get the intersection of the role's policies and the session
  policy: both must allow, neither may deny.
- Action names are case-insensitive; resource ARNs are case-sensitive.
- In both, `*` matches any run of characters (`/` included) and `?` exactly one. In a
  `topicfilter/` ARN, MQTT's `+` and `#` are ordinary characters, matched like any other.
- Condition blocks are not evaluated: a statement with one never allows, and always denies when it
  matches, so that a local decision is never more generous than AWS's.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

ALLOW, DENY = "Allow", "Deny"


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """IAM's `*` and `?` wildcards as a regular expression; every other character is literal."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def matches(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """Whether `value` matches an IAM pattern (`*` any run of characters, `?` one character)."""
    return _compiled(pattern, ignore_case).fullmatch(value) is not None


def _strings(value: Any) -> list[str]:
    """A policy element that may be one string or a list of them."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _element(statement: Mapping[str, Any], name: str, value: str, ignore_case: bool) -> bool:
    """Whether `value` is covered by the statement's `name` element or excluded by its `Not` form."""
    if name in statement:
        return any(matches(p, value, ignore_case) for p in _strings(statement[name]))
    if "Not" + name in statement:
        return not any(matches(p, value, ignore_case) for p in _strings(statement["Not" + name]))
    return False


def decide(policy: Mapping[str, Any], action: str, resource: str) -> str | None:
    """What one policy says of `action` on `resource`: ALLOW, DENY, or None (it does not allow it)."""
    statements = policy.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    allowed = False
    for statement in statements if isinstance(statements, list) else []:
        if not isinstance(statement, Mapping):
            continue
        if not (_element(statement, "Action", action, True) and _element(statement, "Resource", resource, False)):
            continue
        if statement.get("Effect") == DENY:
            return DENY
        if statement.get("Effect") == ALLOW and "Condition" not in statement:
            allowed = True
    return ALLOW if allowed else None


def is_allowed(policies: Iterable[Mapping[str, Any]], action: str, resource: str) -> bool:
    """Whether every policy allows `action` on `resource` (the intersection STS gives a session);
    no policy at all allows nothing."""
    decisions = [decide(policy, action, resource) for policy in policies]
    return bool(decisions) and all(decision == ALLOW for decision in decisions)
