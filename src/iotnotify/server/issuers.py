"""Where keys come from: STS AssumeRole on AWS (`iotnotify local` has its own issuer, same shape)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol

from iotnotify.server.policy import arn_partition, dumps
from iotnotify.times import parse_iso


@dataclass(frozen=True)
class Where:
    """The IoT data endpoint keys are for, and the account and region their policy names."""

    host: str
    port: int
    region: str
    account: str
    partition: str = "aws"


@dataclass(frozen=True)
class Issued:
    """One set of temporary keys."""

    access_key: str
    secret_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: dt.datetime


class IssueError(Exception):
    """An AWS call failed: `step` says which, for the response; `detail` is for the logs only."""

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"could not {step}")
        self.step = step
        self.detail = detail


class Issuer(Protocol):
    """Finds the endpoint once, then hands out keys narrowed by a session policy."""

    def where(self) -> Where: ...

    def issue(self, client_id: str, policy: dict[str, object], lifetime: int) -> Issued: ...


def _describe(error: Exception) -> str:
    """A botocore error's code and message (never request parameters) for the logs."""
    response = getattr(error, "response", None)
    if isinstance(response, dict) and "Error" in response:
        return f"{response['Error'].get('Code')}: {response['Error'].get('Message')}"
    return f"{type(error).__name__}: {error}"


class StsIssuer:
    """Keys from sts:AssumeRole on the notifications role; endpoint and account looked up once."""

    def __init__(self, iot: Any, sts: Any, role: str) -> None:
        self.iot = iot
        self.sts = sts
        self.role = role
        self._where: Where | None = None
        self._role_arn: str | None = None

    def where(self) -> Where:
        """iot:DescribeEndpoint (iot:Data-ATS) and sts:GetCallerIdentity, cached for the container."""
        if self._where is None:
            try:
                host = self.iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
            except Exception as e:
                raise IssueError("find the IoT endpoint", _describe(e)) from None
            try:
                identity = self.sts.get_caller_identity()
            except Exception as e:
                raise IssueError("identify the AWS account", _describe(e)) from None
            region = self.iot.meta.region_name
            in_partition = arn_partition(identity["Arn"])  # aws-iso-b, aws-eusc...: no guessing from the region
            self._where = Where(host, 443, region, identity["Account"], in_partition)
            self._role_arn = (self.role if self.role.startswith("arn:") else
                              f"arn:{in_partition}:iam::{identity['Account']}:role/{self.role}")
        return self._where

    def issue(self, client_id: str, policy: dict[str, object], lifetime: int) -> Issued:
        """sts:AssumeRole with the session policy; the session is named after the client id."""
        self.where()
        try:
            answer = self.sts.assume_role(RoleArn=self._role_arn, RoleSessionName=client_id,
                                          DurationSeconds=lifetime, Policy=dumps(policy))
        except Exception as e:
            raise IssueError("assume the notifications role", _describe(e)) from None
        credentials = answer["Credentials"]
        expiration = credentials["Expiration"]
        if isinstance(expiration, str):
            expiration = parse_iso(expiration)
        return Issued(credentials["AccessKeyId"], credentials["SecretAccessKey"],
                      credentials["SessionToken"], expiration)
