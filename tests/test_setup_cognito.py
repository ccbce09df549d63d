"""`setup-cognito`: the AWS IoT policy authenticated Cognito identities need. moto serves the policy
calls; its AttachPolicy takes certificates and thing groups only, not a Cognito identity, so the
attach calls are checked with botocore's Stubber (against the service's model) in-process."""

import json
import secrets

import boto3
import pytest
from botocore.stub import Stubber

from iotnotify.cognito.setup import setup_cognito
from iotnotify.server.policy import identity_policy
from tests.helpers import ACCOUNT, Cli, aws_env


def clients(moto_url):
    def make(service):
        return boto3.client(service, endpoint_url=moto_url, region_name="eu-west-1", aws_access_key_id="AKIDEXAMPLE",
                            aws_secret_access_key="secret")

    return make("iot"), make("sts")


class Iot:
    """moto's IoT for policies; a stubbed client for the calls about identities."""

    def __init__(self, moto_iot, stubbed) -> None:
        self.moto, self.stubbed, self.exceptions = moto_iot, stubbed, moto_iot.exceptions

    def __getattr__(self, name):
        return getattr(self.stubbed if name in ("list_attached_policies", "attach_policy") else self.moto, name)


@pytest.fixture
def names():
    return "cognito-" + secrets.token_hex(4), f"eu-west-1:{secrets.token_hex(4)}-0000-4000-8000-000000000000"


def test_the_policy_is_created_scoped_and_attached_once(moto_url, names):
    name, identity = names
    moto_iot, sts = clients(moto_url)
    stubbed = boto3.client("iot", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(stubbed) as stub:
        stub.add_response("list_attached_policies", {"policies": []}, {"target": identity})
        stub.add_response("attach_policy", {}, {"policyName": name, "target": identity})
        stub.add_response("list_attached_policies", {"policies": [{"policyName": name}]}, {"target": identity})
        iot = Iot(moto_iot, stubbed)
        first = setup_cognito(iot, sts, region="eu-west-1", topics=["/serverless/pubsub", "alerts/*"],
                              private_prefix="users", identities=[identity], policy_name=name)
        assert (first.created, first.attached, first.already) == (True, [identity], [])
        expected = identity_policy("eu-west-1", ACCOUNT, ["/serverless/pubsub", "alerts/*"], "users", "aws")
        assert json.loads(moto_iot.get_policy(policyName=name)["policyDocument"]) == expected
        again = setup_cognito(iot, sts, region="eu-west-1", topics=["/serverless/pubsub", "alerts/*"],
                              private_prefix="users", identities=[identity], policy_name=name)
        assert (again.created, again.changed, again.attached, again.already) == (False, False, [], [identity])
        stub.assert_no_pending_responses()


def test_new_topics_make_a_new_default_version(moto_url, names):
    name, identity = names
    moto_iot, sts = clients(moto_url)
    stubbed = boto3.client("iot", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(stubbed) as stub:
        for _ in range(2):
            stub.add_response("list_attached_policies", {"policies": [{"policyName": name}]}, {"target": identity})
        iot = Iot(moto_iot, stubbed)
        setup_cognito(iot, sts, region="eu-west-1", topics=["a"], private_prefix=None, identities=[identity],
                      policy_name=name)
        changed = setup_cognito(iot, sts, region="eu-west-1", topics=["alerts/*"], private_prefix=None,
                                identities=[identity], policy_name=name)
    assert changed.changed
    assert json.loads(moto_iot.get_policy(policyName=name)["policyDocument"]) == identity_policy(
        "eu-west-1", ACCOUNT, ["alerts/*"], None, "aws")


def test_the_command_dry_run_changes_nothing(tmp_path, moto_url, names):
    name, identity = names
    admin = Cli(aws_env(tmp_path, moto_url))
    dry = admin.run("setup-cognito", "--identity", identity, "--topics", "/serverless/pubsub,alerts/*",
                    "--private-topic-prefix", "users", "--policy-name", name, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith(f"would create AWS IoT policy {name}: /serverless/pubsub, alerts/* in eu-west-1")
    assert f"  would attach to {identity}" in dry.stdout and "+++ AWS IoT policy" in dry.stdout
    moto_iot, _ = clients(moto_url)
    with pytest.raises(moto_iot.exceptions.ResourceNotFoundException):
        moto_iot.get_policy(policyName=name)


def test_the_identity_id_is_the_client_id():
    policy = identity_policy("eu-west-1", ACCOUNT, ["t"], "users", "aws")
    sub = "${cognito-identity.amazonaws.com:sub}"
    assert policy["Statement"][0]["Resource"] == [f"arn:aws:iot:eu-west-1:{ACCOUNT}:client/{sub}",
                                                  f"arn:aws:iot:eu-west-1:{ACCOUNT}:client/{sub}-*"]
    assert policy["Statement"][3]["Resource"][0] == f"arn:aws:iot:eu-west-1:{ACCOUNT}:topic/users/{sub}"


def test_a_bad_topic_is_a_usage_error(tmp_path, moto_url):
    result = Cli(aws_env(tmp_path, moto_url)).run("setup-cognito", "--identity", "x", "--topics", "a/#")
    assert result.returncode == 2 and result.stderr.startswith("iotnotify: error: --topics or --private-topic-prefix")
