"""What one set of local keys may do: the role's policy intersected with the keys' session policy,
asked as AWS IoT Core asks it (an action on a `client/`, `topic/` or `topicfilter/` ARN), with
what the request says for policy variables and conditions (iam.Context)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from iotnotify import iam
from iotnotify.server.policy import iot_arn

LOOPBACK = "127.0.0.1"  # every client of the local stack's
COGNITO_SUB = "cognito-identity.amazonaws.com:sub"


@dataclass(frozen=True)
class Grants:
    """The policies that decide for one connection, the region and account their ARNs name, and
    what is known of the request: `context` (condition keys in lower case: the Cognito identity
    of its keys, then its client id once connected)."""

    region: str
    account: str
    policies: tuple[Mapping[str, Any], ...] = field(repr=False)
    context: Mapping[str, str | list[str]] = field(default_factory=dict)

    def allows(self, action: str, resource: str, more: iam.Context | None = None) -> bool:
        """Whether every policy allows `action` (e.g. iot:Publish) on `resource` (e.g. topic/a/b),
        with `more` of the request's keys (a CONNECT's attributes)."""
        context = {"aws:sourceip": LOOPBACK, "aws:requestedregion": self.region,
                   "iot:connection.thing.isattached": "false", **self.context, **(more or {})}
        return iam.is_allowed(self.policies, action, iot_arn(self.region, self.account, resource), context)

    def knowing(self, keys: Mapping[str, str | list[str]]) -> Grants:
        """These grants with more of the request known (iot:ClientId once CONNECT came)."""
        return replace(self, context={**self.context, **keys})
