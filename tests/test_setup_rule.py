"""`iotnotify setup-rule` (issue 31, item 4) against moto's IoT, SNS and IAM: the topic rule, the
SNS topic and e-mail subscription, a role AWS IoT assumes that may publish to that one topic;
idempotent, --dry-run, diffs, --delete; and what it refuses before asking AWS."""

import json
import secrets

import boto3
import pytest

from iotnotify.rule import POLICY_NAME, names
from tests.helpers import ACCOUNT, Cli, aws_env, run_in_process, user_env

REGION = "eu-west-1"


@pytest.fixture
def aws(moto_url):
    def client(service: str):  # type: ignore[no-untyped-def]
        return boto3.client(service, endpoint_url=moto_url, region_name=REGION, aws_access_key_id="AKIDEXAMPLE",
                            aws_secret_access_key="verysecretexample")
    return client


@pytest.fixture
def name():
    return "alerts_" + secrets.token_hex(4)  # one moto server for the session: a rule per test


@pytest.fixture
def cli(tmp_path, moto_url):
    return Cli(aws_env(tmp_path, moto_url))


def test_a_new_rule_forwards_the_filter_to_a_topic_the_address_is_subscribed_to(cli, aws, name):
    done = cli.run("setup-rule", name, "--filter", "alerts/#", "--email", "oncall@example.com")
    assert done.returncode == 0, done.stderr
    role_name, topic_name = names(name)
    topic_arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:{topic_name}"
    rule = aws("iot").get_topic_rule(ruleName=name)["rule"]
    assert rule["sql"] == "SELECT * FROM 'alerts/#'" and rule["awsIotSqlVersion"] == "2016-03-23"
    (action,) = rule["actions"]
    assert action["sns"] == {"targetArn": topic_arn, "roleArn": f"arn:aws:iam::{ACCOUNT}:role/{role_name}",
                             "messageFormat": "RAW"}
    role = aws("iam").get_role(RoleName=role_name)["Role"]
    rule_arn = f"arn:aws:iot:{REGION}:{ACCOUNT}:rule/{name}"
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "iot.amazonaws.com"}, "Action": "sts:AssumeRole",
         "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}, "ArnLike": {"aws:SourceArn": rule_arn}}}]
    policy = aws("iam").get_role_policy(RoleName=role_name, PolicyName=POLICY_NAME)["PolicyDocument"]
    assert policy["Statement"] == [{"Effect": "Allow", "Action": "sns:Publish", "Resource": topic_arn}]
    assert aws("iam").list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == []
    (subscription,) = aws("sns").list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", "oncall@example.com")
    assert f"rule {name} set up: messages on alerts/# -> {topic_arn}" in done.stdout
    assert f"created SNS topic {topic_name}" in done.stdout and f"created topic rule {name}" in done.stdout
    assert "SNS mails it a link" in done.stdout and f"+++ topic rule {name} (after)" in done.stdout

    again = cli.run("setup-rule", name, "--filter", "alerts/#", "--email", "oncall@example.com")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"rule {name} unchanged") and "+++" not in again.stdout
    assert len(aws("sns").list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]) == 1


def test_run_again_it_puts_back_what_drifted_and_prints_the_diffs(cli, aws, name):
    assert cli.run("setup-rule", name, "--filter", "alerts/#", "--email", "a@example.com").returncode == 0
    role_name, _ = names(name)
    aws("iam").put_role_policy(RoleName=role_name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sns:*", "Resource": "*"}]}))
    done = cli.run("setup-rule", name, "--filter", "alerts/+/critical", "--email", "a@example.com")
    assert done.returncode == 0, done.stderr
    assert '-      "Action": "sns:*",' in done.stdout and '+      "Action": "sns:Publish",' in done.stdout
    assert "-  \"sql\": \"SELECT * FROM 'alerts/#'\"" in done.stdout
    assert aws("iot").get_topic_rule(ruleName=name)["rule"]["sql"] == "SELECT * FROM 'alerts/+/critical'"
    policy = aws("iam").get_role_policy(RoleName=role_name, PolicyName=POLICY_NAME)["PolicyDocument"]
    assert policy["Statement"][0]["Action"] == "sns:Publish"


def test_dry_run_changes_nothing(cli, aws, name):
    done = cli.run("setup-rule", name, "--filter", "alerts/#", "--email", "a@example.com", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert f"would be created topic rule {name}" in done.stdout
    with pytest.raises(aws("iot").exceptions.ResourceNotFoundException):
        aws("iot").get_topic_rule(ruleName=name)
    with pytest.raises(aws("iam").exceptions.NoSuchEntityException):
        aws("iam").get_role(RoleName=names(name)[0])
    topics = [t["TopicArn"] for t in aws("sns").list_topics()["Topics"]]
    assert not any(arn.endswith(f":{names(name)[1]}") for arn in topics)


def test_a_given_sns_topic_is_used_and_never_deleted(cli, aws, name):
    topic_arn = aws("sns").create_topic(Name=f"ops-{name}")["TopicArn"]
    done = cli.run("setup-rule", name, "--filter", "deploy/+/done", "--sns-topic", topic_arn)
    assert done.returncode == 0, done.stderr
    assert aws("iot").get_topic_rule(ruleName=name)["rule"]["actions"][0]["sns"]["targetArn"] == topic_arn
    deleted = cli.run("setup-rule", name, "--delete")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.splitlines() == [f"deleted topic rule {name}", f"deleted role {names(name)[0]}"]
    assert aws("sns").get_topic_attributes(TopicArn=topic_arn)  # the user's: kept
    missing = cli.run("setup-rule", name, "--filter", "x/#", "--sns-topic", topic_arn.replace("ops-", "none-"))
    assert missing.returncode == 2 and "no such topic" in missing.stderr


def test_delete_removes_what_setup_rule_made(cli, aws, name):
    assert cli.run("setup-rule", name, "--filter", "alerts/#", "--email", "a@example.com").returncode == 0
    dry = cli.run("setup-rule", name, "--delete", "--dry-run")
    assert dry.stdout.splitlines()[0] == f"would delete topic rule {name}"
    assert aws("iot").get_topic_rule(ruleName=name)
    done = cli.run("setup-rule", name, "--delete")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 3
    with pytest.raises(aws("iot").exceptions.ResourceNotFoundException):
        aws("iot").get_topic_rule(ruleName=name)
    with pytest.raises(aws("iam").exceptions.NoSuchEntityException):
        aws("iam").get_role(RoleName=names(name)[0])
    again = cli.run("setup-rule", name, "--delete")
    assert again.returncode == 0 and again.stdout.startswith("nothing to delete")


@pytest.mark.parametrize("args, said", [
    (["setup-rule", "my-rule", "--filter", "a/#", "--email", "a@example.com"], "letters, digits and _ only"),
    (["setup-rule", "r" * 50, "--filter", "a/#", "--email", "a@example.com"], "at most 49"),
    (["setup-rule", "r", "--email", "a@example.com"], "--filter FILTER is needed"),
    (["setup-rule", "r", "--filter", "a/#"], "one of them"),
    (["setup-rule", "r", "--filter", "a/#", "--email", "a@b.c", "--sns-topic", "arn:aws:sns:eu-west-1:1:x"],
     "one of them"),
    (["setup-rule", "r", "--filter", "a/#", "--email", "not-an-address"], "not an e-mail address"),
    (["setup-rule", "r", "--filter", "a/#", "--sns-topic", "arn:aws:s3:::bucket"], "not an SNS topic ARN"),
    (["setup-rule", "r", "--filter", "it's/#", "--email", "a@example.com"], "holding '"),
    (["setup-rule", "r", "--filter", "a/#/b", "--email", "a@example.com"], "#"),
    (["setup-rule", "r", "--delete", "--filter", "a/#"], "NAME alone"),
])
def test_what_setup_rule_refuses_before_asking_aws(tmp_path, args, said):
    done = run_in_process(args, user_env(tmp_path))
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_a_rule_naming_a_role_iam_just_made_is_asked_for_again_until_aws_iot_can_assume_it():
    """AWS IoT refuses a rule whose role has not reached it yet (InvalidRequestException, "Unable
    to assume role"): setup-rule asks again, 1, 2, 4... s apart, for up to ROLE_WAIT, then gives up."""
    from botocore.stub import Stubber

    from iotnotify.rule import patient

    iot = boto3.client("iot", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="y")
    slept: list[float] = []
    with Stubber(iot) as stub:
        for _ in range(3):
            stub.add_client_error("create_topic_rule", "InvalidRequestException", "Unable to assume role: arn:...")
        stub.add_response("create_topic_rule", {})
        patient(iot.create_topic_rule, iot.exceptions.InvalidRequestException, 90, slept.append,
                ruleName="r", topicRulePayload={"sql": "SELECT * FROM 'a'", "actions": []})
        stub.assert_no_pending_responses()
    assert slept == [1.0, 2.0, 4.0]
    with Stubber(iot) as stub:
        for _ in range(3):
            stub.add_client_error("create_topic_rule", "InvalidRequestException", "Unable to assume role")
        with pytest.raises(iot.exceptions.InvalidRequestException):
            patient(iot.create_topic_rule, iot.exceptions.InvalidRequestException, 3, slept.append,
                    ruleName="r", topicRulePayload={"sql": "SELECT * FROM 'a'", "actions": []})
    assert slept[3:] == [1.0, 2.0]  # 1 + 2 s waited; 4 more would pass the 3 s given
