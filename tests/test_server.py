"""The keys endpoint's Lambda handler, its session policies and the role setup, against moto."""

import datetime as dt
import json

import boto3
import pytest
from moto import mock_aws

from iotnotify.iam import is_allowed
from iotnotify.role import ROLE_POLICY_NAME, setup_role
from iotnotify.server import handler as lambda_handler
from iotnotify.server.config import ConfigInvalid, EndpointConfig, load_config
from iotnotify.server.handler import answer
from iotnotify.server.issuers import StsIssuer

ACCOUNT = "123456789012"  # moto's account
REGION = "eu-west-1"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/serverless-notifications"


@pytest.fixture
def aws(monkeypatch):
    """moto in-process, with fake credentials and a region, and a fresh Lambda container."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    lambda_handler._state.clear()
    with mock_aws():
        yield
    lambda_handler._state.clear()


@pytest.fixture
def assume_calls(aws):
    """The parameters of every sts:AssumeRole the handler's clients make."""
    calls = []
    original = boto3.client

    def client(name, *args, **kwargs):
        made = original(name, *args, **kwargs)
        if name == "sts":
            made.meta.events.register("provide-client-params.sts.AssumeRole",
                                      lambda params, **_: calls.append(dict(params)))
        return made

    import unittest.mock

    with unittest.mock.patch.object(boto3, "client", client):
        yield calls


def issuer() -> StsIssuer:
    return StsIssuer(boto3.client("iot"), boto3.client("sts"), "serverless-notifications")


def v2_event(method="GET", query=None):
    return {"version": "2.0", "routeKey": f"{method} /iot/keys", "rawPath": "/iot/keys",
            "requestContext": {"http": {"method": method, "path": "/iot/keys"}},
            "queryStringParameters": query}


def v1_event(method="GET", query=None):
    return {"resource": "/iot/keys", "path": "/iot/keys", "httpMethod": method,
            "queryStringParameters": query, "requestContext": {"stage": "prod"}}


def test_setup_role_then_keys_of_the_tutorial_shape(aws):
    result = setup_role(boto3.client("iam"), boto3.client("sts"), region=REGION)
    assert result.created and result.arn == ROLE_ARN
    response = answer("GET", {}, EndpointConfig(), issuer())
    assert response.status == 200
    body = response.body
    assert {"iotEndpoint", "region", "accessKey", "secretKey", "sessionToken"} <= set(body)
    assert body["iotEndpoint"].endswith(f"-ats.iot.{REGION}.amazonaws.com")
    assert body["region"] == REGION and body["topics"] == ["/serverless/pubsub"]
    assert body["clientId"].startswith("iotnotify-")
    expires = dt.datetime.fromisoformat(body["expiration"].replace("Z", "+00:00"))
    assert 3500 < (expires - dt.datetime.now(dt.UTC)).total_seconds() <= 3600


def test_keys_parse_as_the_client_expects(aws):
    from iotnotify.keys import parse_keys

    keys = parse_keys(answer("GET", {}, EndpointConfig(), issuer()).body)
    assert keys.port == 443 and keys.host.endswith(".amazonaws.com")


def expected_policy(client_id, topics, private=None, any_client_id=False):
    base = f"arn:aws:iot:{REGION}:{ACCOUNT}"
    clients = [f"{base}:client/*"] if any_client_id else [f"{base}:client/{client_id}", f"{base}:client/{client_id}-*"]
    statements = [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": clients},
        {"Effect": "Allow", "Action": ["iot:Publish", "iot:RetainPublish", "iot:Receive"],
         "Resource": [f"{base}:topic/{t}" for t in topics]},
        {"Effect": "Allow", "Action": "iot:Subscribe",  # each filter, and its shared subscriptions in any share
         "Resource": [r for t in topics for r in (f"{base}:topicfilter/{t}", f"{base}:topicfilter/$share/*/{t}")]},
    ]
    if private:
        statements += [{"Effect": "Allow", "Action": "iot:Receive", "Resource": f"{base}:topic/{private}"},
                       {"Effect": "Allow", "Action": "iot:Subscribe",
                        "Resource": [f"{base}:topicfilter/{private}", f"{base}:topicfilter/$share/*/{private}"]}]
    return {"Version": "2012-10-17", "Statement": statements}


def test_assume_role_carries_the_session_policy(assume_calls, monkeypatch):
    monkeypatch.setenv("IOTNOTIFY_TOPICS", "/serverless/pubsub, alerts/all")
    monkeypatch.setenv("IOTNOTIFY_KEY_LIFETIME", "900")
    response = lambda_handler.handler(v2_event())
    body = json.loads(response["body"])
    (call,) = assume_calls
    assert call["RoleArn"] == ROLE_ARN
    assert call["RoleSessionName"] == body["clientId"]
    assert call["DurationSeconds"] == 900
    assert json.loads(call["Policy"]) == expected_policy(body["clientId"], ["/serverless/pubsub", "alerts/all"])


def test_private_topic_lets_one_client_receive_on_its_own_topic(assume_calls, monkeypatch):
    monkeypatch.setenv("IOTNOTIFY_PRIVATE_TOPIC_PREFIX", "users")
    body = json.loads(lambda_handler.handler(v2_event())["body"])
    assert body["privateTopic"] == f"users/{body['clientId']}"
    assert json.loads(assume_calls[0]["Policy"]) == expected_policy(
        body["clientId"], ["/serverless/pubsub"], f"users/{body['clientId']}")


def test_topic_query_narrows_the_keys_to_one_allowed_topic(assume_calls, monkeypatch):
    monkeypatch.setenv("IOTNOTIFY_TOPICS", "a/b,c/d")
    body = json.loads(lambda_handler.handler(v1_event(query={"topic": "c/d"}))["body"])
    assert body["topics"] == ["c/d"]
    assert json.loads(assume_calls[0]["Policy"]) == expected_policy(body["clientId"], ["c/d"])


@pytest.mark.parametrize("event", [v1_event(), v2_event()], ids=["rest-v1", "http-v2"])
def test_both_event_versions_get_keys_with_cors(aws, event, monkeypatch):
    monkeypatch.setenv("IOTNOTIFY_CORS_ORIGIN", "https://app.example")
    response = lambda_handler.handler(event)
    assert response["statusCode"] == 200
    assert response["headers"]["Access-Control-Allow-Origin"] == "https://app.example"
    assert response["headers"]["Content-Type"] == "application/json"
    assert json.loads(response["body"])["accessKey"].startswith("ASIA")


@pytest.mark.parametrize("event", [v1_event("OPTIONS"), v2_event("OPTIONS")], ids=["rest-v1", "http-v2"])
def test_options_preflight(aws, event):
    response = lambda_handler.handler(event)
    assert response["statusCode"] == 204 and response["body"] == ""
    assert response["headers"]["Access-Control-Allow-Origin"] == "*"
    assert "GET" in response["headers"]["Access-Control-Allow-Methods"]


def test_other_methods_are_refused(aws):
    response = lambda_handler.handler(v2_event("POST"))
    assert response["statusCode"] == 405 and response["headers"]["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("topic", ["other/topic", "a/*", "a/?", "a/#", "a/+", "${iot:ClientId}", "", "a b"])
def test_bad_topic_query_is_a_400(assume_calls, topic):
    response = lambda_handler.handler(v2_event(query={"topic": topic}))
    assert response["statusCode"] == 400
    assert response["headers"]["Access-Control-Allow-Origin"] == "*"
    assert assume_calls == []


@pytest.mark.parametrize("variable, value", [
    ("IOTNOTIFY_TOPICS", "a*"), ("IOTNOTIFY_TOPICS", "a/*/b"), ("IOTNOTIFY_TOPICS", "*"), ("IOTNOTIFY_TOPICS", "/*"),
    ("IOTNOTIFY_TOPICS", "a?"), ("IOTNOTIFY_TOPICS", "a/#"),
    ("IOTNOTIFY_TOPICS", "+/b"), ("IOTNOTIFY_TOPICS", "${aws:username}"), ("IOTNOTIFY_TOPICS", ","),
    ("IOTNOTIFY_PRIVATE_TOPIC_PREFIX", "users/*"), ("IOTNOTIFY_KEY_LIFETIME", "899"),
    ("IOTNOTIFY_KEY_LIFETIME", "3601"), ("IOTNOTIFY_KEY_LIFETIME", "1h"),
])
def test_widening_or_invalid_configuration_is_refused(variable, value):
    with pytest.raises(ConfigInvalid):
        load_config({variable: value})


def test_misconfigured_endpoint_answers_500_with_cors_and_logs_why(aws, monkeypatch, capsys):
    monkeypatch.setenv("IOTNOTIFY_TOPICS", "a/*/b")
    response = lambda_handler.handler(v2_event())
    assert response["statusCode"] == 500
    assert json.loads(response["body"]) == {"message": "the keys endpoint is misconfigured (see its logs)"}
    assert response["headers"]["Access-Control-Allow-Origin"] == "*"
    assert "'a/*/b' cannot go into a policy" in capsys.readouterr().out


def test_a_topic_ending_in_star_covers_every_topic_below_it(assume_calls, monkeypatch):
    monkeypatch.setenv("IOTNOTIFY_TOPICS", "alerts/*,/serverless/pubsub")
    body = json.loads(lambda_handler.handler(v2_event())["body"])
    assert body["topics"] == ["alerts/*", "/serverless/pubsub"]
    assert json.loads(assume_calls[0]["Policy"]) == expected_policy(body["clientId"], ["alerts/*", "/serverless/pubsub"])
    narrowed = json.loads(lambda_handler.handler(v2_event(query={"topic": "alerts/disk/sda"}))["body"])
    assert narrowed["topics"] == ["alerts/disk/sda"]  # ?topic= names one topic the configuration covers
    for outside in ("alerts", "other/x", "alerts/*"):
        assert lambda_handler.handler(v2_event(query={"topic": outside}))["statusCode"] == 400


@pytest.mark.parametrize("broken, step", [
    ("iot", "could not find the IoT endpoint"),
    ("sts", "could not identify the AWS account"),
    ("role", "could not assume the notifications role"),
])
def test_aws_failures_are_502_naming_the_step_without_leaking(aws, capsys, broken, step):
    import botocore.config

    unreachable = "http://127.0.0.1:9"  # a closed port; one attempt, so the test fails fast
    quick = botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=1)
    iot = boto3.client("iot", endpoint_url=unreachable if broken == "iot" else None, config=quick)
    sts = boto3.client("sts", endpoint_url=unreachable if broken == "sts" else None, config=quick)
    role = "arn:bad" if broken == "role" else "serverless-notifications"  # STS refuses the ARN
    response = answer("GET", {}, EndpointConfig(), StsIssuer(iot, sts, role))
    assert response.status == 502
    assert response.body == {"message": step}
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    logged = capsys.readouterr().out
    assert "keys_failed" in logged and step.removeprefix("could not ") in logged
    assert "testing" not in logged  # the credentials never reach the logs


def test_issued_keys_are_logged_without_secrets(aws, capsys):
    body = answer("GET", {}, EndpointConfig(), issuer()).body
    logged = capsys.readouterr().out
    assert body["accessKey"] in logged and body["clientId"] in logged
    assert body["secretKey"] not in logged and body["sessionToken"] not in logged


def test_setup_role_twice_updates_instead_of_failing(aws):
    iam = boto3.client("iam")
    first = setup_role(iam, boto3.client("sts"), region=REGION)
    second = setup_role(iam, boto3.client("sts"), region=REGION, trusted=f"arn:aws:iam::{ACCOUNT}:role/keys-function")
    assert (first.created, second.created) == (True, False) and first.arn == second.arn
    role = iam.get_role(RoleName="serverless-notifications")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:role/keys-function"}
    inline = iam.get_role_policy(RoleName="serverless-notifications", PolicyName=ROLE_POLICY_NAME)
    document = inline["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    assert document["Statement"][0]["Action"] == ["iot:Connect", "iot:Subscribe", "iot:Publish", "iot:RetainPublish",
                                                  "iot:Receive"]


def test_any_client_id_lets_clients_that_pick_their_own_id_connect(assume_calls, monkeypatch):
    monkeypatch.setenv("IOTNOTIFY_ANY_CLIENT_ID", "true")
    body = json.loads(lambda_handler.handler(v2_event())["body"])
    assert json.loads(assume_calls[0]["Policy"]) == expected_policy(body["clientId"], ["/serverless/pubsub"],
                                                                    any_client_id=True)


def test_endpoint_and_account_are_looked_up_once_per_container(aws, monkeypatch):
    calls = []
    original = boto3.client

    def client(name, *args, **kwargs):
        made = original(name, *args, **kwargs)
        made.meta.events.register("before-call", lambda model, **_: calls.append(model.name))
        return made

    monkeypatch.setattr(boto3, "client", client)
    for _ in range(3):
        assert lambda_handler.handler(v2_event())["statusCode"] == 200
    assert calls.count("DescribeEndpoint") == 1 and calls.count("GetCallerIdentity") == 1
    assert calls.count("AssumeRole") == 3


def test_topics_that_would_make_the_session_policy_too_large_are_refused():
    load_config({"IOTNOTIFY_TOPICS": ",".join(f"topic/{i}" for i in range(7))})
    with pytest.raises(ConfigInvalid, match="AWS allows 2048 \\(without shared subscriptions it would be smaller\\)"):
        load_config({"IOTNOTIFY_TOPICS": ",".join(f"topic/{i}" for i in range(8))})
    # without shared subscriptions' resources, about twice as many
    load_config({"IOTNOTIFY_TOPICS": ",".join(f"topic/{i}" for i in range(12)), "IOTNOTIFY_SHARED_SUBSCRIPTIONS": "false"})
    with pytest.raises(ConfigInvalid, match=r"AWS allows 2048$"):
        load_config({"IOTNOTIFY_TOPICS": ",".join(f"some/rather/long/topic/name/{i}" for i in range(30)),
                     "IOTNOTIFY_SHARED_SUBSCRIPTIONS": "no"})


@pytest.mark.parametrize("shared, events", [(True, False), (False, False), (True, True)])
def test_the_session_policy_grants_shared_subscriptions_and_lifecycle_events_as_configured(shared, events):
    config = load_config({"IOTNOTIFY_TOPICS": "alerts/*", "IOTNOTIFY_SHARED_SUBSCRIPTIONS": str(shared),
                          "IOTNOTIFY_LIFECYCLE_EVENTS": str(events)})
    policy = config.session_policy(REGION, ACCOUNT, "c1", ["alerts/*"], None, None)
    base = f"arn:aws:iot:{REGION}:{ACCOUNT}"
    assert is_allowed([policy], "iot:Subscribe", f"{base}:topicfilter/alerts/x")
    assert is_allowed([policy], "iot:Subscribe", f"{base}:topicfilter/$share/workers/alerts/#") == shared
    assert not is_allowed([policy], "iot:Subscribe", f"{base}:topicfilter/$share/workers/other/#")
    assert is_allowed([policy], "iot:Subscribe", f"{base}:topicfilter/$aws/events/presence/+/+") == events
    assert is_allowed([policy], "iot:Receive", f"{base}:topic/$aws/events/presence/connected/c2") == events


def test_the_partition_table_is_botocores():
    """ARNs in us-isob-east-1 or eusc-de-east-1 must not say `aws` (policies that fail closed)."""
    import os
    import re

    import botocore

    from iotnotify.server.policy import PARTITIONS, partition

    with open(os.path.join(os.path.dirname(botocore.__file__), "data", "partitions.json")) as f:
        theirs = json.load(f)["partitions"]
    assert [(name, f"^{pattern.replace('-', chr(92) + '-')}$") for name, pattern in PARTITIONS] == [
        (p["id"], p["regionRegex"]) for p in theirs]
    for known in theirs:  # each of botocore's regions lands in its own partition
        for region in known["regions"]:
            if re.fullmatch(r"[a-z]+(-[a-z]+)+-\d+", region):  # not aws-global and the like
                assert partition(region) == known["id"], region
    assert (partition("us-isob-east-1"), partition("eusc-de-east-1")) == ("aws-iso-b", "aws-eusc")


def test_keys_name_the_partition_of_the_callers_arn(monkeypatch, aws):
    """In China the account's ARNs say aws-cn: the session policy and the role ARN follow the
    caller identity's ARN, not a guess from the region."""
    iot, sts = boto3.client("iot", region_name="cn-north-1"), boto3.client("sts", region_name="cn-north-1")
    calls = []
    sts.meta.events.register("provide-client-params.sts.AssumeRole", lambda params, **_: calls.append(dict(params)))
    body = answer("GET", {}, EndpointConfig(), StsIssuer(iot, sts, "serverless-notifications")).body
    assert body["region"] == "cn-north-1"
    assert calls[0]["RoleArn"] == f"arn:aws-cn:iam::{ACCOUNT}:role/serverless-notifications"
    resources = [r for s in json.loads(calls[0]["Policy"])["Statement"]
                 for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
    assert resources and all(r.startswith(f"arn:aws-cn:iot:cn-north-1:{ACCOUNT}:") for r in resources)


@pytest.mark.parametrize("value, allowed", [("on", True), ("Yes", True), ("1", True), ("off", False), ("", False)])
def test_any_client_id_reads_true_and_false_as_the_cli_does(value, allowed):
    assert load_config({"IOTNOTIFY_ANY_CLIENT_ID": value}).any_client_id is allowed


def test_any_client_id_that_is_neither_is_a_configuration_error():
    with pytest.raises(ConfigInvalid, match="IOTNOTIFY_ANY_CLIENT_ID: 'maybe' is not true or false"):
        load_config({"IOTNOTIFY_ANY_CLIENT_ID": "maybe"})


@pytest.mark.parametrize("event", [
    {"version": "2.0", "rawPath": "/", "requestContext": {"http": {"method": "GET", "path": "/"}}},
    {"resource": "/", "path": "/", "httpMethod": "GET", "requestContext": {"stage": "prod"}},
])
def test_the_lambda_serves_the_page_without_any_aws_call(event, monkeypatch):
    """GET / and /static/... are the tutorial's page, the same files `iotnotify local` serves (less
    its ws:// address: on AWS the page connects to wss://<iotEndpoint>/mqtt); no keys are minted."""
    from iotnotify.web import asset

    monkeypatch.setattr(lambda_handler, "_setup", lambda: pytest.fail("the page needs no AWS call"))
    page = lambda_handler.handler(event)
    assert page["statusCode"] == 200 and page["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page["headers"]["Content-Security-Policy"]
    assert "Retrieve Keys" in page["body"] and "iotnotify-mqtt-url" not in page["body"]
    assert page["body"].encode() == asset("/").body
    script = lambda_handler.handler({**event, "rawPath": "/static/page.js", "path": "/static/page.js"})
    assert script["headers"]["Content-Type"].startswith("text/javascript")
    assert "iotdevicegateway" in script["body"]


def test_only_the_pages_own_files_are_served():
    from iotnotify.web import asset

    assert asset("/static/../server/handler.py") is None
    assert asset("/static/missing.js") is None
    local = asset("/", "ws://127.0.0.1:9081/mqtt")
    assert local is not None and b'<meta name="iotnotify-mqtt-url" content="ws://127.0.0.1:9081/mqtt">' in local.body
