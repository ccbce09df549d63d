"""`iotnotify setup-role` run again on an existing role changes no more than it must: it keeps the
trust policy unless --trust, refuses a role with other policies unless --force, scopes the inline
policy to a region and account (and topics), prints a diff, and writes the SAM template's policy."""

import json
import re
import secrets
from pathlib import Path

import boto3
import pytest
from cfnlint.decode import decode_str

from iotnotify import iam
from iotnotify.role import ROLE_POLICY_NAME
from iotnotify.server.policy import role_policy
from tests.helpers import ACCOUNT, Cli, aws_env

TEMPLATE = Path(__file__).resolve().parent.parent / "src" / "iotnotify" / "deploy" / "template.yaml"
FUNCTION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/keys-function"


@pytest.fixture
def iam_client(moto_url):
    return boto3.client("iam", endpoint_url=moto_url, region_name="eu-west-1", aws_access_key_id="AKIDEXAMPLE",
                        aws_secret_access_key="verysecretexample")


@pytest.fixture
def name():
    return "notify-" + secrets.token_hex(4)  # one moto server for the session: a role per test


def trust_of(principal: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}]}


def inline(iam_client, name: str) -> dict:
    return iam_client.get_role_policy(RoleName=name, PolicyName=ROLE_POLICY_NAME)["PolicyDocument"]


def test_a_new_role_is_scoped_to_the_sessions_region_and_account(tmp_path, moto_url, iam_client, name):
    result = Cli(aws_env(tmp_path, moto_url)).run("setup-role", "--role-name", name)
    assert result.returncode == 0, result.stderr
    assert inline(iam_client, name)["Statement"][0]["Resource"] == f"arn:aws:iot:eu-west-1:{ACCOUNT}:*"
    assert "in eu-west-1, account 123456789012, any topic" in result.stdout
    assert "+++ inline policy iot-notifications (after)" in result.stdout  # what was created, as a diff


def test_an_existing_roles_trust_is_kept_unless_trust_is_given(tmp_path, moto_url, iam_client, name):
    iam_client.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust_of(FUNCTION_ROLE)))
    cli = Cli(aws_env(tmp_path, moto_url))
    kept = cli.run("setup-role", "--role-name", name)
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.startswith(f"updated role {name}")
    assert f"trusted principal: {FUNCTION_ROLE}\n" in kept.stdout and "trust policy kept" in kept.stdout
    assert iam_client.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"] == trust_of(FUNCTION_ROLE)
    assert "trust policy (before)" not in kept.stdout

    other = f"arn:aws:iam::{ACCOUNT}:role/other-function"
    replaced = cli.run("setup-role", "--role-name", name, "--trust", other)
    assert replaced.returncode == 0, replaced.stderr
    assert iam_client.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"] == trust_of(other)
    assert f'-        "AWS": "{FUNCTION_ROLE}"\n+        "AWS": "{other}"\n' in replaced.stdout


def test_a_role_with_other_policies_is_refused_unless_forced(tmp_path, moto_url, iam_client, name):
    iam_client.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust_of(FUNCTION_ROLE)))
    admin = iam_client.create_policy(PolicyName=f"{name}-admin", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))["Policy"]["Arn"]
    iam_client.attach_role_policy(RoleName=name, PolicyArn=admin)
    iam_client.put_role_policy(RoleName=name, PolicyName="s3-read", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
    cli = Cli(aws_env(tmp_path, moto_url))
    refused = cli.run("setup-role", "--role-name", name)
    assert refused.returncode == 2
    assert refused.stderr == (f"iotnotify: error: role {name} has other policies (managed {admin}, inline s3-read), "
                              "which its keys would get besides IoT: detach them, or keep them with --force\n")
    assert iam_client.list_role_policies(RoleName=name)["PolicyNames"] == ["s3-read"]  # nothing written

    forced = cli.run("setup-role", "--role-name", name, "--force")
    assert forced.returncode == 0, forced.stderr
    assert f"keeps other policies, which its keys get besides IoT: managed {admin}, inline s3-read" in forced.stderr
    assert inline(iam_client, name) == role_policy("eu-west-1", ACCOUNT)


def test_an_old_account_wide_policy_is_narrowed_with_a_diff(tmp_path, moto_url, iam_client, name):
    iam_client.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust_of(FUNCTION_ROLE)))
    iam_client.put_role_policy(RoleName=name, PolicyName=ROLE_POLICY_NAME, PolicyDocument=json.dumps(role_policy()))
    result = Cli(aws_env(tmp_path, moto_url)).run("setup-role", "--role-name", name, "--region", "us-east-2",
                                                  "--topics", "/serverless/pubsub,alerts/*")
    assert result.returncode == 0, result.stderr
    assert "--- inline policy iot-notifications (before)" in result.stdout
    assert '-      "Resource": "*"' in result.stdout
    assert f'+        "arn:aws:iot:us-east-2:{ACCOUNT}:topic/alerts/*"' in result.stdout
    policy = inline(iam_client, name)
    def allowed(action, resource):
        return iam.is_allowed([policy], action, f"arn:aws:iot:us-east-2:{ACCOUNT}:{resource}")
    assert allowed("iot:Publish", "topic/alerts/disk") and allowed("iot:Subscribe", "topicfilter/alerts/#")
    assert allowed("iot:Connect", "client/anything")  # the session policy narrows the client id
    assert not allowed("iot:Publish", "topic/$aws/things/x/shadow/update")
    assert not allowed("iot:Subscribe", "topicfilter/#")
    assert not iam.is_allowed([policy], "iot:Publish", f"arn:aws:iot:eu-west-1:{ACCOUNT}:topic/alerts/disk")


def test_dry_run_changes_nothing(tmp_path, moto_url, iam_client, name):
    cli = Cli(aws_env(tmp_path, moto_url))
    result = cli.run("setup-role", "--role-name", name, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"would create role {name}: arn:aws:iam::{ACCOUNT}:role/{name}")
    assert "+++ trust policy (after)" in result.stdout
    with pytest.raises(iam_client.exceptions.NoSuchEntityException):
        iam_client.get_role(RoleName=name)


@pytest.mark.parametrize("args, message", [
    (["--topics", "a/#"], "--topics or --private-topic-prefix: topic 'a/#' cannot go into a policy"),
    (["--private-topic-prefix", "users"], "--private-topic-prefix needs --topics"),
])
def test_bad_topics_are_usage_errors(tmp_path, moto_url, name, args, message):
    result = Cli(aws_env(tmp_path, moto_url)).run("setup-role", "--role-name", name, *args)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_region_is_required(tmp_path, moto_url, name):
    env = aws_env(tmp_path, moto_url)
    del env["AWS_DEFAULT_REGION"]
    result = Cli(env).run("setup-role", "--role-name", name)
    assert result.returncode == 3 and "no AWS region: use --region" in result.stderr


def rendered_template_policy(region: str, account: str, partition: str) -> dict:
    """The SAM template's notifications role policy, its !Sub resolved for one region and account."""
    template, problems = decode_str(TEMPLATE.read_text())
    assert not problems
    (policy,) = template["Resources"]["NotificationsRole"]["Properties"]["Policies"]
    text = json.dumps(policy["PolicyDocument"])
    text = re.sub(r'\{"Fn::Sub": ("[^"]*")\}', lambda m: m.group(1), text)
    for name, value in {"AWS::Partition": partition, "AWS::Region": region, "AWS::AccountId": account}.items():
        text = text.replace("${" + name + "}", value)
    return json.loads(text)


@pytest.mark.parametrize("region, partition", [("eu-west-1", "aws"), ("cn-north-1", "aws-cn"),
                                               ("us-isob-east-1", "aws-iso-b")])
def test_the_template_and_setup_role_write_the_same_policy(region, partition):
    assert rendered_template_policy(region, ACCOUNT, partition) == role_policy(region, ACCOUNT,
                                                                               partition_name=partition)
