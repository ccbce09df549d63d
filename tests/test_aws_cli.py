"""`iotnotify setup-role` and `--aws` mode, run as commands against a moto server on loopback."""

import json

import pytest

from tests.helpers import ACCOUNT, Cli, aws_env


def test_setup_role_creates_then_updates(tmp_path, moto_url):
    cli = Cli(aws_env(tmp_path, moto_url))
    first = cli.run("setup-role", "--role-name", "notify-test")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == f"created role notify-test: arn:aws:iam::{ACCOUNT}:role/notify-test"
    assert f"trusted principal: arn:aws:iam::{ACCOUNT}:root" in first.stdout
    assert "iot:Connect, iot:Subscribe, iot:Publish, iot:RetainPublish, iot:Receive" in first.stdout
    second = cli.run("setup-role", "--role-name", "notify-test")
    assert second.returncode == 0
    assert second.stdout.startswith("unchanged role notify-test")  # run again: nothing to change, no diff
    assert "trust policy kept" in second.stdout and "---" not in second.stdout


def test_setup_role_without_credentials_is_a_clear_error(tmp_path, moto_url):
    env = aws_env(tmp_path, moto_url)
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    result = Cli(env).run("setup-role")
    assert result.returncode == 3
    assert result.stderr.startswith("iotnotify: error: no AWS credentials found")
    assert len(result.stderr.splitlines()) == 1


def test_unknown_aws_profile(tmp_path, moto_url):
    result = Cli(aws_env(tmp_path, moto_url)).run("setup-role", "--aws-profile", "nope")
    assert result.returncode == 3 and "AWS profile not found: nope" in result.stderr


def test_a_role_name_aws_would_refuse_is_exit_9(tmp_path, moto_url):
    result = Cli(aws_env(tmp_path, moto_url)).run("setup-role", "--role-name", "")
    assert result.returncode == 9
    assert result.stderr.startswith("iotnotify: error: AWS call failed: Parameter validation failed")
    assert len(result.stderr.splitlines()) == 1


def test_aws_refusals_name_the_call_and_the_code(monkeypatch):
    from moto import mock_aws

    from iotnotify.aws import aws_errors
    from iotnotify.errors import AwsError

    for name, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(name, value)
    import boto3

    with mock_aws(), pytest.raises(AwsError, match="AWS GetRole failed: NoSuchEntity: Role missing not found"), \
            aws_errors():
        boto3.client("iam").get_role(RoleName="missing")


def test_aws_mode_uses_local_credentials_and_finds_the_endpoint(tmp_path, moto_url):
    result = Cli(aws_env(tmp_path, moto_url)).run("keys", "--aws")
    assert result.returncode == 0, result.stderr
    assert "keys from      AWS credentials (profile default)\n" in result.stdout
    assert "session token  (none: long-term keys)" in result.stdout
    assert "-ats.iot.eu-west-1.amazonaws.com:443" in result.stdout
    assert "AKIDEXAMPLE" in result.stdout and "verysecretexample" not in result.stdout


def test_aws_mode_with_role_gets_scoped_keys_from_the_endpoint_code(tmp_path, moto_url):
    cli = Cli(aws_env(tmp_path, moto_url, IOTNOTIFY_TOPICS="alerts/all"))
    assert cli.run("setup-role").returncode == 0
    result = cli.run("keys", "--aws-role", "serverless-notifications", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["topics"] == ["alerts/all"] and data["clientId"].startswith("iotnotify-")
    assert data["accessKey"] != "AKIDEXAMPLE" and data["iotEndpoint"].endswith(".amazonaws.com")


def test_aws_mode_checks_aws_limits_before_connecting(tmp_path, moto_url):
    result = Cli(aws_env(tmp_path, moto_url)).run("send", "--aws", "a/b/c/d/e/f/g/h/i", "x")
    assert result.returncode == 2
    assert "AWS IoT Core allows at most 7" in result.stderr


def test_aws_mode_keys_end_when_the_credentials_do():
    """Refreshable credentials (SSO, an assumed role) keep their expiry private in botocore: the
    keys' expiry is found through the public refresh_needed, to the second; static keys have none."""
    import datetime as dt

    from botocore.credentials import Credentials, RefreshableCredentials

    from iotnotify.keys.aws import seconds_left

    for lifetime in (1, 900, 43200):
        ends = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lifetime)
        metadata = {"access_key": "A", "secret_key": "S", "token": "T", "expiry_time": ends.isoformat()}
        refreshable = RefreshableCredentials.create_from_metadata(metadata, dict, "test")  # never refreshed
        left = seconds_left(refreshable)
        assert left is not None and lifetime - 2 <= left <= lifetime
    assert seconds_left(Credentials("A", "S")) is None
