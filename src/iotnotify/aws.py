"""Direct use of local AWS credentials (`--aws`, `setup-role`): the only client-side boto3 user.

Imported only when asked for, so that `send`/`subscribe`/`keys` without --aws never load boto3.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import botocore.exceptions

from iotnotify.errors import AwsError, ConfigError
from iotnotify.keys import DEFAULT_LIFETIME, TemporaryKeys, parse_keys


@contextmanager
def aws_errors() -> Iterator[None]:
    """Turn botocore's exceptions into one-line errors (no credentials: 3; AWS failures: 9)."""
    try:
        yield
    except botocore.exceptions.NoCredentialsError:
        raise ConfigError("no AWS credentials found: run `aws configure`, set AWS_PROFILE or "
                          "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use --aws-profile") from None
    except botocore.exceptions.ProfileNotFound as e:
        raise ConfigError(f"AWS profile not found: {e.kwargs.get('profile')}") from None
    except botocore.exceptions.NoRegionError:
        raise ConfigError("no AWS region: set AWS_REGION or the profile's region") from None
    except botocore.exceptions.ClientError as e:
        error = e.response.get("Error", {})
        raise AwsError(f"AWS {e.operation_name} failed: {error.get('Code')}: {error.get('Message')}") from None
    except botocore.exceptions.BotoCoreError as e:
        raise AwsError(f"AWS call failed: {e}") from None


def session(profile: str | None) -> Any:
    """A boto3 session for the named AWS profile (None: the default credential chain)."""
    with aws_errors():
        return boto3.Session(profile_name=profile)


def direct_keys(profile: str | None, role: str | None) -> TemporaryKeys:
    """Keys without a keys endpoint: the session's own credentials, or, with `role`, keys from
    assuming the notifications role with the endpoint's session policy (the same code as the Lambda)."""
    aws = session(profile)
    with aws_errors():
        if role:
            return _assumed_keys(aws, role)
        credentials = aws.get_credentials()
        if credentials is None:
            raise botocore.exceptions.NoCredentialsError()
        frozen = credentials.get_frozen_credentials()
        host = aws.client("iot").describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
        if not aws.region_name:
            raise botocore.exceptions.NoRegionError()
    now = dt.datetime.now(dt.timezone.utc)
    expiry = getattr(credentials, "_expiry_time", None)  # refreshable credentials say when they end
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
