"""The SAM template: valid for cfn-lint, pointing at a handler that imports with the Lambda runtime's
modules only, and refusing at deploy time the same topics the handler refuses."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from iotnotify.server.policy import PolicyError, check_policy_topic, role_policy

TEMPLATE = Path(__file__).resolve().parent.parent / "src" / "iotnotify" / "deploy" / "template.yaml"
TEXT = TEMPLATE.read_text()


def test_cfn_lint_passes():
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_handler_imports_with_stdlib_and_boto3_only():
    handler = re.search(r"^\s+Handler: (\S+)$", TEXT, re.MULTILINE).group(1)
    module, function = handler.rsplit(".", 1)
    code = (f"import sys, {module} as m; assert callable(m.{function}); "
            "print(sorted({n.split('.')[0] for n in sys.modules} & {'click','rich','awscrt','awsiot','websockets','tomlkit','platformdirs','cryptography'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=TEMPLATE.parent.parent.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def accepted_by_handler(topic: str, below: bool) -> bool:
    try:
        check_policy_topic(topic, below=below)
    except PolicyError:
        return False
    return True


@pytest.mark.parametrize("parameter", ["Topics", "PrivateTopicPrefix"])
@pytest.mark.parametrize("topic", ["/serverless/pubsub", "users", "a/b-c_d.e:f=g@h", "a/*", "/a/b/*", "a*", "a/*/b",
                                   "*", "/*", "a?", "a/#", "+", "${iot:ClientId}", "a b", "a,b"])
def test_template_refuses_the_topics_the_handler_refuses(parameter, topic):
    block = re.search(rf"^  {parameter}:\n((?:    .*\n)+)", TEXT, re.MULTILINE).group(1)
    pattern = re.search(r'AllowedPattern: "(.*)"', block).group(1).encode().decode("unicode_escape")  # YAML's \\
    accepted_by_template = re.fullmatch(pattern, topic) is not None
    if topic == "a,b" and parameter == "Topics":
        assert accepted_by_template  # a list of two safe topics
    else:  # a configured topic may end in /*; the private prefix may not
        assert accepted_by_template == accepted_by_handler(topic, below=parameter == "Topics")


def test_the_templates_role_grants_what_the_local_stack_assumes():
    """The notifications role's actions in the template are role_policy()'s, which the local stack uses."""
    actions = re.search(r"Action: \[(iot:Connect[^\]]*)\]", TEXT).group(1).split(", ")
    assert actions == role_policy()["Statement"][0]["Action"]
    assert "iot:RetainPublish" in actions  # retained messages need it besides iot:Publish


def translated_template() -> dict:
    """The template as CloudFormation deploys it: SAM's transform applied (with the code in S3, as
    `sam deploy` puts it; the translator wants a region, AWS_DEFAULT_REGION, and uses it for nothing here)."""
    from cfnlint.decode import decode_str
    from samtranslator.translator.transform import transform

    template, problems = decode_str(TEXT)
    assert not problems
    template["Resources"]["KeysFunction"]["Properties"]["CodeUri"] = "s3://bucket/code.zip"

    class NoManagedPolicies:
        def load(self) -> dict:
            return {}

    return transform(template, {}, NoManagedPolicies())


def test_the_public_endpoint_is_throttled_and_its_concurrency_capped(monkeypatch):
    """A flood of GET /iot/keys is refused by API Gateway (429) before it costs a Lambda run or an
    sts:AssumeRole, and the function cannot take the account's concurrency."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    resources = translated_template()["Resources"]
    (stage,) = [r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Stage"]
    assert stage["Properties"]["DefaultRouteSettings"] == {"ThrottlingRateLimit": {"Ref": "ThrottleRate"},
                                                           "ThrottlingBurstLimit": {"Ref": "ThrottleBurst"}}
    function = resources["KeysFunction"]["Properties"]
    assert function["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReserveConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    parameters = yaml_parameters()
    assert (parameters["ThrottleRate"]["Default"], parameters["ThrottleBurst"]["Default"],
            parameters["ReservedConcurrency"]["Default"]) == (10, 20, 5)


def yaml_parameters() -> dict:
    from cfnlint.decode import decode_str

    return decode_str(TEXT)[0]["Parameters"]


def test_the_api_serves_the_page_beside_the_keys(monkeypatch):
    """GET / and GET /static/{file} reach the same function (which serves the page with no AWS
    call), so the deployed page fetches `iot/keys` from its own origin."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    resources = translated_template()["Resources"]
    api = next(r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Api")
    paths = api["Properties"]["Body"]["paths"]
    assert {"/", "/static/{file}", "/iot/keys"} <= set(paths)
    assert "get" in paths["/"] and "get" in paths["/static/{file}"]
    handler = re.search(r"^\s+Handler: (\S+)$", TEXT, re.MULTILINE).group(1)
    code = f"import {handler.rsplit('.', 1)[0]} as m, iotnotify.web as p; assert p.asset('/static/mqtt.min.js')"
    assert subprocess.run([sys.executable, "-c", code], cwd=TEMPLATE.parent.parent.parent).returncode == 0


def evaluate(node, values: dict, conditions: dict):  # noqa: PLR0911 - a return per function it reads
    """Just enough of CloudFormation's intrinsic functions to read a policy the template builds:
    Ref, Fn::Sub (with ${!...} left as IAM's variable), Fn::Join, Fn::Split, Fn::If."""
    if isinstance(node, list):
        return [item for item in (evaluate(n, values, conditions) for n in node) if item != "AWS::NoValue"]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        return values.get(node["Ref"], node["Ref"])
    if set(node) == {"Fn::Sub"}:
        text, local = (node["Fn::Sub"], {}) if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"]
        names = {**values, **{k: evaluate(v, values, conditions) for k, v in local.items()}}
        text = re.sub(r"\$\{(?!!)([^}]+)\}", lambda m: str(names[m.group(1)]), text)
        return text.replace("${!", "${")
    if set(node) == {"Fn::Join"}:
        delimiter, items = node["Fn::Join"]
        return delimiter.join(evaluate(items, values, conditions))
    if set(node) == {"Fn::Split"}:
        delimiter, text = node["Fn::Split"]
        return evaluate(text, values, conditions).split(delimiter)
    if set(node) == {"Fn::If"}:
        name, then, otherwise = node["Fn::If"]
        return evaluate(then if conditions[name] else otherwise, values, conditions)
    return {k: evaluate(v, values, conditions) for k, v in node.items()}


def test_the_identity_pools_role_is_scoped_as_the_keys_are():
    """CognitoIdentityPool=true: unauthenticated identities may use the Topics and their private
    topic only, under a client id that is their identity id, in this region (aws:RequestedRegion)."""
    from cfnlint.decode import decode_str

    template = decode_str(TEXT)[0]
    role = template["Resources"]["IdentityPoolRole"]
    assert role["Condition"] == "CreateIdentityPool"
    values = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012",
              "Topics": "/serverless/pubsub,alerts/*", "PrivateTopicPrefix": "users"}
    document = evaluate(role["Properties"]["Policies"][0]["PolicyDocument"], values,
                        {"IdentityPoolWithPrivateTopic": True})
    arn, sub = "arn:aws:iot:eu-west-1:123456789012", "${cognito-identity.amazonaws.com:sub}"
    connect, publish, subscribe, private = document["Statement"]
    assert connect["Resource"] == [f"{arn}:client/{sub}", f"{arn}:client/{sub}-*"]
    assert publish["Resource"] == [f"{arn}:topic//serverless/pubsub", "arn:*:iot:*:*:topic/alerts/*"]
    assert subscribe["Resource"] == [f"{arn}:topicfilter//serverless/pubsub", "arn:*:iot:*:*:topicfilter/alerts/*",
                                     f"{arn}:topicfilter/$share/*//serverless/pubsub",  # shared subscriptions
                                     "arn:*:iot:*:*:topicfilter/$share/*/alerts/*"]
    assert private["Resource"] == [f"{arn}:topic/users/{sub}", f"{arn}:topicfilter/users/{sub}",
                                   f"{arn}:topicfilter/$share/*/users/{sub}"]
    for statement in (connect, publish, subscribe):
        assert statement["Condition"] == {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Condition"]["ForAnyValue:StringLike"] == {"cognito-identity.amazonaws.com:amr": "unauthenticated"}
    without = evaluate(role["Properties"]["Policies"][0]["PolicyDocument"], values,
                       {"IdentityPoolWithPrivateTopic": False})
    assert len(without["Statement"]) == 3


def test_notify_email_makes_what_setup_rule_makes():
    """NotifyEmail=ADDRESS: the topic rule, the SNS topic with the address subscribed, and a role AWS
    IoT assumes that may publish to that topic alone; the documents are setup-rule's (rule.py)."""
    from cfnlint.decode import decode_str

    from iotnotify.rule import payload, publish_policy, trust

    template = decode_str(TEXT)[0]
    resources = {name: r for name, r in template["Resources"].items() if name.startswith("Notify")}
    assert {r["Condition"] for r in resources.values()} == {"Notify"}
    assert template["Conditions"]["Notify"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "NotifyEmail"}, ""]}]}
    assert template["Parameters"]["NotifyEmail"]["Default"] == ""  # off unless asked for
    values = {"NotifyFilter": "alerts/#", "NotifyEmail": "oncall@example.com"}
    topic = resources["NotifyTopic"]["Properties"]
    assert evaluate(topic, values, {}) == {"Subscription": [{"Protocol": "email", "Endpoint": "oncall@example.com"}]}
    role = resources["NotifyRole"]["Properties"]
    account = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012"}
    assert evaluate(role["AssumeRolePolicyDocument"], account, {}) == trust("arn:aws:iot:eu-west-1:123456789012:rule/*")
    (policy,) = role["Policies"]
    assert evaluate(policy["PolicyDocument"], {"NotifyTopic": "TOPIC"}, {}) == publish_policy("TOPIC")
    rule = evaluate(resources["NotifyRule"]["Properties"]["TopicRulePayload"],
                    {**values, "NotifyTopic": "TOPIC"}, {})
    wanted = payload("alerts/#", "TOPIC", "ROLE", "r")
    (action,) = rule["Actions"]
    assert (rule["Sql"], rule["AwsIotSqlVersion"], rule["RuleDisabled"]) == \
        (wanted["sql"], wanted["awsIotSqlVersion"], wanted["ruleDisabled"])
    assert action["Sns"]["TargetArn"] == "TOPIC" and action["Sns"]["MessageFormat"] == "RAW"
    assert action["Sns"]["RoleArn"] == {"Fn::GetAtt": ["NotifyRole", "Arn"]}
