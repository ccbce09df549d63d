"""boto3 sessions and their errors as ours, for the client side's AWS users (`--aws` keys,
`setup-role`). Imported only when asked for, so that `send`/`subscribe`/`keys` without --aws never
load boto3."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import botocore.exceptions

from iotnotify.errors import AwsError, ConfigError


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
