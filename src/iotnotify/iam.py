"""IAM policy evaluation for AWS IoT actions, as AWS decides them for SigV4 connections. Pure functions.

The rules that matter here (IAM User Guide: "Policy evaluation logic", "IAM JSON policy elements:
Action, NotAction, Resource, NotResource", "Variables and tags", "Condition operators"; AWS IoT
Developer Guide: "AWS IoT Core policy actions", "AWS IoT Core policy variables"):

- An explicit Deny in any policy wins; otherwise an Allow is needed; otherwise the action is denied.
- Keys issued with a session policy get the intersection of the role's policies and the session
  policy: both must allow, neither may deny.
- Action names are case-insensitive; resource ARNs are case-sensitive.
- In both, `*` matches any run of characters (`/` included) and `?` exactly one. In a
  `topicfilter/` ARN, MQTT's `+` and `#` are ordinary characters, matched like any other.
- `${key}` in a Resource is the request's value of `key` (`iot:ClientId`,
  `cognito-identity.amazonaws.com:sub`...: the `context` a caller gives); `${*}`, `${?}` and `${$}`
  are the characters themselves. A variable the request has no value for
  (`iot:Connection.Thing.ThingName` without a registry) makes the statement invalid: it never allows.
- Conditions: the operators AWS IoT's examples use (String*, Arn*, Bool, IpAddress, Null; the
  `ForAllValues:`/`ForAnyValue:` set forms and `...IfExists`) on the request's keys. A statement
  whose condition cannot be evaluated here (another operator, a key the caller does not model)
  never allows, and denies when it matches, so that a local decision is never more generous
  than AWS's.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

ALLOW, DENY = "Allow", "Deny"
Context = Mapping[str, "str | list[str]"]
"""Condition key (lower case) -> the request's value, or values ([] where AWS has none for this
request, as iot:LastWillTopic without a will); a key absent from it is not modelled: Unresolved."""
VARIABLE = re.compile(r"\$\{([^}]*)\}")
Tokens = tuple[tuple[bool, str], ...]
"""A pattern cut where its variables were: (literal, text) pieces. The policy's own text keeps
IAM's wildcards; what a variable stood for (a request's value, or ${*} ${?} ${$}) is literal:
a client id `*` matches only `*`."""


class Unresolved(Exception):
    """A policy variable or condition this request has no value for, or an operator not known here."""


@functools.lru_cache(maxsize=4096)
def _compiled(tokens: Tokens, ignore_case: bool) -> re.Pattern[str]:
    """IAM's `*` and `?` wildcards in the policy's own text as a regular expression; every other
    character, and every character a variable stood for, is literal."""
    body = "".join(re.escape(text) if literal else "".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                                                            for c in text) for literal, text in tokens)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def matches(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """Whether `value` matches an IAM pattern (`*` any run of characters, `?` one character)."""
    return _compiled(((False, pattern),), ignore_case).fullmatch(value) is not None


def substitute(pattern: str, context: Context) -> Tokens:
    """`pattern` with each `${key}` replaced by the request's value, as literal text (Unresolved if
    the request has none); `${*}`, `${?}` and `${$}` are those characters, literal too."""
    tokens: list[tuple[bool, str]] = []
    at = 0
    for found in VARIABLE.finditer(pattern):
        key = found.group(1)
        known = key if key in ("*", "?", "$") else context.get(key.lower())
        if not isinstance(known, str):
            raise Unresolved(key)
        tokens += [(False, pattern[at:found.start()]), (True, known)]
        at = found.end()
    return (*tokens, (False, pattern[at:]))


def _like(pattern: str, value: str, context: Context, ignore_case: bool = False) -> bool:
    """Whether `value` matches `pattern`, its variables replaced by the request's values."""
    return _compiled(substitute(pattern, context), ignore_case).fullmatch(value) is not None


def _text(pattern: str, context: Context) -> str:
    """`pattern` with its variables replaced, as plain text (for the operators without wildcards)."""
    return "".join(text for _, text in substitute(pattern, context))


def _strings(value: Any) -> list[str]:
    """A policy element that may be one string or a list of them."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _condition_values(value: Any) -> list[str]:
    """A condition's values as IAM reads them: strings, and JSON booleans and numbers as their text."""
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, (str, bool, int, float)) for v in values):
        raise Unresolved("a condition value")
    return [("true" if v else "false") if isinstance(v, bool) else str(v) for v in values]


def _element(statement: Mapping[str, Any], name: str, value: str, ignore_case: bool, context: Context) -> bool:
    """Whether `value` is covered by the statement's `name` element or excluded by its `Not` form."""
    if name in statement:
        return any(_like(p, value, context, ignore_case) for p in _strings(statement[name]))
    if "Not" + name in statement:
        return not any(_like(p, value, context, ignore_case) for p in _strings(statement["Not" + name]))
    return False


def _compare(operator: str, wanted: str, have: str, context: Context) -> bool:
    """One value against one of the condition's (its variables replaced by the request's)."""
    if operator in ("StringEquals", "ArnEquals"):
        return have == _text(wanted, context)
    if operator in ("StringEqualsIgnoreCase", "Bool"):
        return have.lower() == _text(wanted, context).lower()
    if operator in ("StringLike", "ArnLike"):
        return _like(wanted, have, context)
    try:  # IpAddress
        return ipaddress.ip_address(have) in ipaddress.ip_network(_text(wanted, context), strict=False)
    except ValueError:
        return False


POSITIVE = {"StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike", "Bool", "IpAddress"}
NEGATED = {"StringNotEquals": "StringEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
           "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike",
           "NotIpAddress": "IpAddress"}


def _condition(operator: str, key: str, wanted: list[str], context: Context) -> bool:
    """One operator on one key: whether the request's value(s) satisfy it (Unresolved for an
    operator, qualifier or key not known here)."""
    qualifier, _, operator = operator.rpartition(":")
    base = operator.removesuffix("IfExists")
    if qualifier not in ("", "ForAllValues", "ForAnyValue") or (base not in POSITIVE and base not in NEGATED
                                                                 and operator != "Null"):
        raise Unresolved(operator)
    if key.lower() not in context:  # a key not modelled here: AWS may well have a value for it
        raise Unresolved(key)
    have = context[key.lower()]
    values = [have] if isinstance(have, str) else list(have)
    if operator == "Null":  # "true": the key must be absent
        return (not values) == (wanted[:1] == ["true"])
    if not values:  # IAM: ForAnyValue fails and ForAllValues holds on no values; IfExists holds when
        if qualifier:  # the key is absent; a negated operator holds on an absent key
            return qualifier == "ForAllValues"
        return operator.endswith("IfExists") or base in NEGATED
    positive = NEGATED.get(base, base)

    def one(value: str) -> bool:
        hit = any(_compare(positive, w, value, context) for w in wanted)
        return not hit if base in NEGATED else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in values)
    return any(one(v) for v in values)  # ForAnyValue, and a single-valued key


def conditions_hold(conditions: Any, context: Context) -> bool:
    """Whether every operator and key of a Condition block holds for the request (Unresolved if
    one cannot be evaluated here)."""
    if not isinstance(conditions, Mapping):
        raise Unresolved("Condition")
    for operator, keys in conditions.items():
        if not isinstance(keys, Mapping):
            raise Unresolved(str(operator))
        for key, wanted in keys.items():
            if not _condition(str(operator), str(key), _condition_values(wanted), context):
                return False
    return True


def decide(policy: Mapping[str, Any], action: str, resource: str, context: Context | None = None) -> str | None:
    """What one policy says of `action` on `resource` for a request with `context` (condition
    keys, lower case, and their values): ALLOW, DENY, or None (it does not allow it)."""
    context = context or {}
    statements = policy.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    allowed = False
    for statement in statements if isinstance(statements, list) else []:
        if not isinstance(statement, Mapping):
            continue
        deny = statement.get("Effect") == DENY
        if not _element(statement, "Action", action, True, {}):
            continue
        try:
            if not _element(statement, "Resource", resource, False, context):
                continue
            holds = "Condition" not in statement or conditions_hold(statement["Condition"], context)
        except Unresolved:  # never more generous than AWS: no allow from it, a deny if it may apply
            if deny:
                return DENY
            continue
        if holds and deny:
            return DENY
        if holds and statement.get("Effect") == ALLOW:
            allowed = True
    return ALLOW if allowed else None


def is_allowed(policies: Iterable[Mapping[str, Any]], action: str, resource: str,
               context: Context | None = None) -> bool:
    """Whether every policy allows `action` on `resource` (the intersection STS gives a session);
    no policy at all allows nothing."""
    decisions = [decide(policy, action, resource, context) for policy in policies]
    return bool(decisions) and all(decision == ALLOW for decision in decisions)
