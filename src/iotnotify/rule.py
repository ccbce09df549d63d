"""`iotnotify setup-rule`: notifications for people away from a terminal. An AWS IoT topic rule
forwards the messages on a filter to an Amazon SNS topic (which mails, texts or calls them), with a
role AWS IoT assumes that may publish to that one SNS topic and nothing else.

Run again, it changes no more than it must and says what changed (before/after pairs, as
setup-role): the rule's SQL and action, the role's trust and inline policy, the e-mail subscription
(added if missing; SNS mails the address a confirmation link first). `delete` removes the rule, the
role and the SNS topic it made (never a topic given by ARN). Developer Guide: "Rules for AWS IoT",
"SNS" rule action (RAW message format), "Granting an AWS IoT rule the access it requires".
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from iotnotify.errors import UsageError
from iotnotify.role import Change, inline_policy, policy_document
from iotnotify.server.policy import arn_partition
from iotnotify.topics import check_filter

RULE_NAME = re.compile(r"[A-Za-z0-9_]{1,49}")  # AWS IoT's: letters, digits, _; 49 at most, so that the role's
# name (iotnotify-rule-NAME) fits IAM's 64 characters whole: two rules never share a role
ROLE_WAIT = 90.0  # s a new role may take to reach AWS IoT (it refuses the rule meanwhile: InvalidRequestException)
SQL_VERSION = "2016-03-23"
POLICY_NAME = "publish-to-sns"


def names(rule: str) -> tuple[str, str]:
    """The role and the SNS topic setup-rule makes for rule NAME."""
    return f"iotnotify-rule-{rule}", f"iotnotify-{rule}"


@dataclass
class RuleResult:
    """What setup did (or, dry, would do): the rule's, the role's and the SNS topic's ARNs, what
    was created (or deleted), the documents that changed, and the e-mail subscription's state."""

    rule_arn: str
    role_arn: str
    topic_arn: str
    created: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    subscription: str | None = None  # "added" (SNS mails a confirmation), "pending", "confirmed"
    deleted: list[str] = field(default_factory=list)


def check(rule: str, topic_filter: str | None, sns_topic: str | None, email: str | None, delete: bool) -> None:
    """UsageError for what AWS would refuse, before anything is asked of it."""
    if not RULE_NAME.fullmatch(rule):
        raise UsageError(f"rule name {rule[:80]!r}: letters, digits and _ only (AWS IoT's rule names), at most 49")
    if delete:
        if topic_filter or email or sns_topic:
            raise UsageError("--delete takes the rule's NAME alone")
        return
    if not topic_filter:
        raise UsageError("--filter FILTER is needed: the messages to forward")
    check_filter(topic_filter, aws=True)
    if "'" in topic_filter:
        raise UsageError("--filter: AWS IoT's SQL cannot quote a topic filter holding '")
    if (sns_topic is None) == (email is None):
        raise UsageError("give --sns-topic ARN or --email ADDRESS (one of them)")
    if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise UsageError(f"--email {email[:80]!r} is not an e-mail address")
    if sns_topic is not None and not re.fullmatch(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}",
                                                  sns_topic):
        raise UsageError(f"--sns-topic {sns_topic[:120]!r} is not an SNS topic ARN")


def trust(rule_arn: str) -> dict[str, Any]:
    """Who may assume the rule's role: AWS IoT, for this rule of this account alone (the conditions
    AWS recommends against the confused deputy: another account's rule cannot use the role)."""
    account = rule_arn.split(":")[4]
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "iot.amazonaws.com"}, "Action": "sts:AssumeRole",
         "Condition": {"StringEquals": {"aws:SourceAccount": account}, "ArnLike": {"aws:SourceArn": rule_arn}}}]}


def publish_policy(topic_arn: str) -> dict[str, Any]:
    """What the rule's role may do: publish to one SNS topic."""
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sns:Publish", "Resource": topic_arn}]}


def payload(topic_filter: str, topic_arn: str, role_arn: str, rule: str) -> dict[str, Any]:
    """The topic rule: every message on the filter, as it is (RAW), to the SNS topic."""
    sql = f"SELECT * FROM '{topic_filter}'"  # noqa: S608 - AWS IoT's SQL; check() refused a filter holding '
    return {"sql": sql, "awsIotSqlVersion": SQL_VERSION, "ruleDisabled": False,
            "description": f"iotnotify setup-rule {rule}: messages on {topic_filter} to Amazon SNS",
            "actions": [{"sns": {"targetArn": topic_arn, "roleArn": role_arn, "messageFormat": "RAW"}}]}


def setup_rule(clients: dict[str, Any], rule: str, topic_filter: str, *, region: str,
               sns_topic: str | None = None, email: str | None = None, dry_run: bool = False) -> RuleResult:
    """Create or update the SNS topic (for `email`), its e-mail subscription, the role and the rule
    (`clients`: boto3's iot, iam, sns and sts); with `dry_run`, change nothing and say what would."""
    result = _arns(clients, rule, region, sns_topic)
    role_name, topic_name = names(rule)
    sns, iam, iot = clients["sns"], clients["iam"], clients["iot"]
    if sns_topic is None:
        if not _topic_exists(sns, result.topic_arn):
            result.created.append(f"SNS topic {topic_name}")
            if not dry_run:
                result.topic_arn = sns.create_topic(Name=topic_name)["TopicArn"]
        result.subscription = _subscribe(sns, result.topic_arn, email or "", dry_run)
    elif not _topic_exists(sns, sns_topic):
        raise UsageError(f"--sns-topic {sns_topic}: no such topic in the account")
    _role(iam, role_name, result, dry_run)
    wanted = payload(topic_filter, result.topic_arn, result.role_arn, rule)
    current = _rule(iot, rule)
    if current is None:
        result.created.append(f"topic rule {rule}")
        result.changes.append(Change(f"topic rule {rule}", None, wanted))
    elif current != wanted:
        result.changes.append(Change(f"topic rule {rule}", current, wanted))
    if not dry_run and current != wanted:
        call = iot.create_topic_rule if current is None else iot.replace_topic_rule
        patient(call, iot.exceptions.InvalidRequestException, ROLE_WAIT if f"role {role_name}" in result.created
                else 0.0, ruleName=rule, topicRulePayload=wanted)
    return result


def patient(call: Callable[..., Any], error: type[Exception], wait: float,
            sleep: Callable[[float], None] = time.sleep, **arguments: Any) -> Any:
    """`call(**arguments)`, again after 1, 2, 4... s while it raises `error`, for up to `wait`
    seconds: a role IAM has just made takes a few seconds to reach AWS IoT, which refuses a rule
    that names it meanwhile (as Terraform's provider waits)."""
    delay, waited = 1.0, 0.0
    while True:
        try:
            return call(**arguments)
        except error:
            if waited + delay > wait:
                raise
            sleep(delay)
            waited, delay = waited + delay, min(delay * 2, 16.0)


def delete_rule(clients: dict[str, Any], rule: str, *, region: str, dry_run: bool = False) -> RuleResult:
    """Delete the rule, its role, and the SNS topic setup-rule made for it (if it did)."""
    result = _arns(clients, rule, region)
    role_name, topic_name = names(rule)
    sns, iam, iot = clients["sns"], clients["iam"], clients["iot"]
    if _rule(iot, rule) is not None:
        result.deleted.append(f"topic rule {rule}")
        if not dry_run:
            iot.delete_topic_rule(ruleName=rule)
    try:
        iam.get_role(RoleName=role_name)
    except iam.exceptions.NoSuchEntityException:
        pass
    else:
        result.deleted.append(f"role {role_name}")
        if not dry_run:  # IAM deletes a role only once it has no policy, inline or attached
            for policy in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
                iam.delete_role_policy(RoleName=role_name, PolicyName=policy)
            for attached in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
                iam.detach_role_policy(RoleName=role_name, PolicyArn=attached["PolicyArn"])
            iam.delete_role(RoleName=role_name)
    if _topic_exists(sns, result.topic_arn):
        result.deleted.append(f"SNS topic {topic_name} (and its subscriptions)")
        if not dry_run:
            sns.delete_topic(TopicArn=result.topic_arn)
    return result


def _arns(clients: dict[str, Any], rule: str, region: str, sns_topic: str | None = None) -> RuleResult:
    """The ARNs of what setup-rule makes for `rule` in the caller's account (the SNS topic's: its
    own, unless `sns_topic` is given), in a result to fill."""
    identity = clients["sts"].get_caller_identity()
    partition, account = arn_partition(identity["Arn"]), identity["Account"]
    role_name, topic_name = names(rule)
    return RuleResult(f"arn:{partition}:iot:{region}:{account}:rule/{rule}",
                      f"arn:{partition}:iam::{account}:role/{role_name}",
                      sns_topic or f"arn:{partition}:sns:{region}:{account}:{topic_name}")


def _topic_exists(sns: Any, arn: str) -> bool:
    try:
        sns.get_topic_attributes(TopicArn=arn)
    except sns.exceptions.NotFoundException:
        return False
    return True


def _subscribe(sns: Any, topic_arn: str, email: str, dry_run: bool) -> str:
    """The e-mail subscription's state: "confirmed", "pending" (SNS mailed a confirmation link), or
    "added" now (a new confirmation is mailed)."""
    if not dry_run or _topic_exists(sns, topic_arn):
        pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
        for page in pages:
            for subscription in page["Subscriptions"]:
                if subscription["Protocol"] == "email" and subscription["Endpoint"].lower() == email.lower():
                    return "pending" if subscription["SubscriptionArn"] == "PendingConfirmation" else "confirmed"
    if not dry_run:
        sns.subscribe(TopicArn=topic_arn, Protocol="email", Endpoint=email)
    return "added"


def _role(iam: Any, role_name: str, result: RuleResult, dry_run: bool) -> None:
    """Create the role, or bring its trust and inline policy to what they should be."""
    policy, trusted = publish_policy(result.topic_arn), trust(result.rule_arn)
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        role = None
    if role is None:
        result.created.append(f"role {role_name}")
        result.changes += [Change(f"role {role_name} trust policy", None, trusted),
                           Change(f"role {role_name} inline policy {POLICY_NAME}", None, policy)]
        if not dry_run:
            result.role_arn = iam.create_role(
                RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trusted),
                Description="AWS IoT publishes a topic rule's messages to one SNS topic (iotnotify setup-rule)",
            )["Role"]["Arn"]
            iam.put_role_policy(RoleName=role_name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy))
        return
    result.role_arn = role["Arn"]
    current_trust = policy_document(role["AssumeRolePolicyDocument"])
    if current_trust != trusted:
        result.changes.append(Change(f"role {role_name} trust policy", current_trust, trusted))
        if not dry_run:
            iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=json.dumps(trusted))
    changed = inline_policy(iam, role_name, POLICY_NAME, policy, dry_run, f"role {role_name} inline policy {POLICY_NAME}")
    result.changes += [changed] if changed is not None else []


def _rule(iot: Any, rule: str) -> dict[str, Any] | None:
    """The rule's payload as create_topic_rule takes it, or None if there is no such rule."""
    try:
        found = iot.get_topic_rule(ruleName=rule)["rule"]
    except iot.exceptions.ResourceNotFoundException:
        return None
    except iot.exceptions.UnauthorizedException:
        return None  # (what get_topic_rule answers for a rule that does not exist, in some regions)
    return {"sql": found.get("sql"), "awsIotSqlVersion": found.get("awsIotSqlVersion"),
            "ruleDisabled": found.get("ruleDisabled", False), "description": found.get("description", ""),
            "actions": found.get("actions", [])}
