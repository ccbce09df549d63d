"""What one set of local keys may do: the role's policy intersected with the keys' session policy,
asked as AWS IoT Core asks it (an action on a `client/`, `topic/` or `topicfilter/` ARN)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from iotnotify import iam
from iotnotify.server.policy import iot_arn


@dataclass(frozen=True)
class Grants:
    """The policies that decide for one connection, and the region and account their ARNs name."""

    region: str
    account: str
    policies: tuple[Mapping[str, Any], ...] = field(repr=False)

    def allows(self, action: str, resource: str) -> bool:
        """Whether every policy allows `action` (e.g. iot:Publish) on `resource` (e.g. topic/a/b)."""
        return iam.is_allowed(self.policies, action, iot_arn(self.region, self.account, resource))
