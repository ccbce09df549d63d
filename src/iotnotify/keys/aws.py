"""Keys from local AWS credentials (`--aws`): the session's own, or the notifications role's with
the endpoint's session policy (`--aws-role`). boto3 is loaded only here and in setup-role."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import botocore.exceptions

from iotnotify.aws import aws_errors, session
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
            raise botocore.exceptions.NoCredentialsError
        frozen = credentials.get_frozen_credentials()
        host = aws.client("iot").describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
        if not aws.region_name:
            raise botocore.exceptions.NoRegionError
    now = dt.datetime.now(dt.UTC)
    try:  # refreshable credentials (SSO, assumed roles) say when they end, in a field botocore keeps private
        expiry = credentials._expiry_time  # noqa: SLF001 - the one use of botocore's internals
    except AttributeError:
        expiry = None
    expiration = expiry if isinstance(expiry, dt.datetime) else now + dt.timedelta(seconds=DEFAULT_LIFETIME)
    return TemporaryKeys(host=host, port=443, region=aws.region_name, access_key=frozen.access_key,
                         secret_key=frozen.secret_key, session_token=frozen.token or "",
                         expiration=expiration, fetched_at=now, raw={"iotEndpoint": host, "region": aws.region_name})


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
