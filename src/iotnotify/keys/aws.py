"""Keys from local AWS credentials (`--aws`): the session's own, or the notifications role's with
the endpoint's session policy (`--aws-role`). boto3 is loaded only here and in setup-role."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from iotnotify.aws import NO_CREDENTIALS, NO_REGION, aws_errors, session
from iotnotify.errors import AwsError, ConfigError
from iotnotify.keys.model import DEFAULT_LIFETIME, TemporaryKeys, parse_keys


def direct_keys(profile: str | None, role: str | None) -> TemporaryKeys:
    """Keys without a keys endpoint: the session's own credentials, or, with `role`, keys from
    assuming the notifications role with the endpoint's session policy (the same code as the Lambda)."""
    aws = session(profile)
    with aws_errors():
        if role:
            return _assumed_keys(aws, role)
        credentials = aws.get_credentials()
        if credentials is None:
            raise ConfigError(NO_CREDENTIALS)
        frozen = credentials.get_frozen_credentials()
        left = seconds_left(credentials)  # before another call may refresh them
        host = aws.client("iot").describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
        if not aws.region_name:
            raise ConfigError(NO_REGION)
    now = dt.datetime.now(dt.UTC)
    expiration = now + dt.timedelta(seconds=DEFAULT_LIFETIME if left is None else left)
    return TemporaryKeys(host=host, port=443, region=aws.region_name, access_key=frozen.access_key,
                         secret_key=frozen.secret_key, session_token=frozen.token or "",
                         expiration=expiration, fetched_at=now, raw={"iotEndpoint": host, "region": aws.region_name})


LONGEST = 1 << 20
"""Seconds (12 days) beyond any temporary credentials' lifetime (STS's longest is 36 hours): the
search's upper end; credentials that last longer count as lasting DEFAULT_LIFETIME."""


def seconds_left(credentials: Any) -> int | None:
    """Seconds until refreshable credentials (SSO, an assumed role) end, None if they do not say.
    botocore keeps the expiry private; its public `refresh_needed(refresh_in)` says whether they
    end within `refresh_in` seconds, so a binary search finds it to the second in 20 calls."""
    needed = getattr(credentials, "refresh_needed", None)
    if needed is None or not needed(LONGEST):  # static keys: no expiry
        return None
    low, high = 0, LONGEST  # they end after `low` seconds and within `high`
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if needed(middle) else (middle, high)
    return low


def _assumed_keys(aws: Any, role: str) -> TemporaryKeys:
    """Run the keys endpoint's own `answer` in-process with an STS issuer on this session."""
    from dataclasses import replace

    from iotnotify.server.config import ConfigInvalid, load_config
    from iotnotify.server.handler import answer
    from iotnotify.server.issuers import StsIssuer

    try:
        config = replace(load_config(os.environ), role=role)
    except ConfigInvalid as e:
        raise ConfigError(str(e)) from None
    issuer = StsIssuer(aws.client("iot"), aws.client("sts"), role)
    response = answer("GET", {}, config, issuer, log=lambda *_args, **_fields: None)  # stdout is the user's
    if response.status != 200:
        raise AwsError(str((response.body or {}).get("message", f"HTTP {response.status}")))
    return parse_keys(response.body)
