"""boto3 sessions and their errors as ours, for the client side's AWS users (`--aws` keys,
`setup-role`). Imported only when asked for, so that `send`/`subscribe`/`keys` without --aws never
load boto3."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from iotnotify.errors import AwsError, ConfigError

EXTRA = "pip install 'iotnotify[aws]' (pipx: pipx inject iotnotify boto3)"
try:
    import boto3
    import botocore.exceptions
except ImportError:  # the light install: boto3 and botocore (34 MB) come with the `aws` extra
    raise ConfigError(f"this needs boto3, which is not installed: {EXTRA}") from None

NO_CREDENTIALS = ("no AWS credentials found: run `aws configure`, set AWS_PROFILE or "
                  "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use --aws-profile")
NO_REGION = "no AWS region: set AWS_REGION or the profile's region"


@contextmanager
def aws_errors() -> Iterator[None]:
    """Turn botocore's exceptions into one-line errors (no credentials: 3; AWS failures: 9)."""
    try:
        yield
    except botocore.exceptions.NoCredentialsError:
        raise ConfigError(NO_CREDENTIALS) from None
    except botocore.exceptions.ProfileNotFound as e:
        raise ConfigError(f"AWS profile not found: {e.kwargs.get('profile')}") from None
    except botocore.exceptions.NoRegionError:
        raise ConfigError(NO_REGION) from None
    except botocore.exceptions.ClientError as e:
        error = e.response.get("Error", {})
        raise AwsError(f"AWS {e.operation_name} failed: {error.get('Code')}: {error.get('Message')}") from None
    except botocore.exceptions.BotoCoreError as e:
        raise AwsError(f"AWS call failed: {e}") from None


def session(profile: str | None) -> Any:
    """A boto3 session for the named AWS profile (None: the default credential chain)."""
    with aws_errors():
        return boto3.Session(profile_name=profile)
