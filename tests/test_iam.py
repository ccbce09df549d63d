"""IAM policy evaluation (iotnotify.iam) against hand-worked cases and, by property, against an
independent model of IAM's wildcards (fnmatch with its character classes switched off)."""

import fnmatch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotnotify import iam

ARN = "arn:aws:iot:eu-west-1:123456789012"


def allow(action, resource, **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource, **extra):
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


@pytest.mark.parametrize("pattern, value, expected", [
    ("topic/a/b", "topic/a/b", True),
    ("topic/a/b", "topic/a/bc", False),
    ("topic/a/*", "topic/a/b/c/d", True),  # * crosses /
    ("topic/a/*", "topic/a/", True),  # and matches nothing at all
    ("topic/a/*", "topic/a", False),
    ("topic/a/?", "topic/a/b", True),
    ("topic/a/?", "topic/a/bc", False),
    ("topicfilter/a/*", "topicfilter/a/#", True),  # MQTT's wildcards are plain characters here
    ("topicfilter/a/+", "topicfilter/a/b", False),
    ("topicfilter/a/#", "topicfilter/a/#", True),
    ("topic/a.b", "topic/aXb", False),  # . is not a regex wildcard
    ("topic/[ab]", "topic/a", False),  # nor are brackets a class
    ("topic/A", "topic/a", False),  # resources are case-sensitive
    ("*", "", True),
])
def test_wildcards_match_as_iam_reads_them(pattern, value, expected):
    assert iam.matches(pattern, value) is expected


@pytest.mark.parametrize("policies, action, resource, expected", [
    # an Allow is needed
    ([policy(allow("iot:Publish", f"{ARN}:topic/a"))], "iot:Publish", f"{ARN}:topic/a", True),
    ([policy(allow("iot:Publish", f"{ARN}:topic/a"))], "iot:Publish", f"{ARN}:topic/b", False),
    ([policy(allow("iot:Publish", f"{ARN}:topic/a"))], "iot:Receive", f"{ARN}:topic/a", False),
    # actions are case-insensitive, and take wildcards
    ([policy(allow("IOT:publish", f"{ARN}:topic/a"))], "iot:Publish", f"{ARN}:topic/a", True),
    ([policy(allow("iot:*", f"{ARN}:*"))], "iot:RetainPublish", f"{ARN}:topic/x", True),
    ([policy(allow("iot:P*", f"{ARN}:*"))], "iot:Receive", f"{ARN}:topic/x", False),
    # a lists of actions or resources: any of them
    ([policy(allow(["iot:Publish", "iot:Receive"], [f"{ARN}:topic/a", f"{ARN}:topic/b"]))],
     "iot:Receive", f"{ARN}:topic/b", True),
    # an explicit Deny wins, in the same policy or another
    ([policy(allow("iot:*", "*"), deny("iot:Receive", f"{ARN}:topic/secret/*"))],
     "iot:Receive", f"{ARN}:topic/secret/x", False),
    ([policy(allow("iot:*", "*"), deny("iot:Receive", f"{ARN}:topic/secret/*"))],
     "iot:Publish", f"{ARN}:topic/secret/x", True),
    ([policy(allow("iot:*", "*")), policy(deny("*", "*"))], "iot:Connect", f"{ARN}:client/c", False),
    # with a session policy: the intersection
    ([policy(allow("iot:*", f"{ARN}:*")), policy(allow("iot:Publish", f"{ARN}:topic/a"))],
     "iot:Publish", f"{ARN}:topic/a", True),
    ([policy(allow("iot:*", f"{ARN}:*")), policy(allow("iot:Publish", f"{ARN}:topic/a"))],
     "iot:Subscribe", f"{ARN}:topicfilter/a", False),
    ([policy(allow("iot:Publish", "arn:aws:iot:us-east-1:*")), policy(allow("iot:*", "*"))],
     "iot:Publish", f"{ARN}:topic/a", False),  # the role is for another region
    # NotAction and NotResource
    ([policy({"Effect": "Allow", "NotAction": "iot:Connect", "Resource": "*"})], "iot:Publish", f"{ARN}:topic/a", True),
    ([policy({"Effect": "Allow", "NotAction": "iot:Connect", "Resource": "*"})], "iot:Connect", f"{ARN}:client/c", False),
    ([policy(allow("iot:*", "*"), {"Effect": "Deny", "Action": "iot:Publish", "NotResource": f"{ARN}:topic/ok/*"})],
     "iot:Publish", f"{ARN}:topic/other", False),
    ([policy(allow("iot:*", "*"), {"Effect": "Deny", "Action": "iot:Publish", "NotResource": f"{ARN}:topic/ok/*"})],
     "iot:Publish", f"{ARN}:topic/ok/1", True),
    # conditions are not evaluated: never an Allow, always a Deny
    ([policy(allow("iot:*", "*", Condition={"Bool": {"aws:SecureTransport": "true"}}))],
     "iot:Publish", f"{ARN}:topic/a", False),
    ([policy(allow("iot:*", "*"), deny("iot:*", "*", Condition={"Bool": {"aws:SecureTransport": "false"}}))],
     "iot:Publish", f"{ARN}:topic/a", False),
    # a single statement as an object, not a list
    ([{"Statement": allow("iot:Connect", f"{ARN}:client/c")}], "iot:Connect", f"{ARN}:client/c", True),
    # nothing allows nothing
    ([], "iot:Connect", f"{ARN}:client/c", False),
    ([policy()], "iot:Connect", f"{ARN}:client/c", False),
    ([{"Statement": "junk"}], "iot:Connect", f"{ARN}:client/c", False),
])
def test_policy_evaluation_hand_worked(policies, action, resource, expected):
    assert iam.is_allowed(policies, action, resource) is expected


def reference_match(pattern: str, value: str) -> bool:
    """IAM's * and ? through fnmatch, with [ made literal so that only those two are special."""
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


pieces = st.text(alphabet="ab/+#.*?[]$", max_size=12)


@settings(max_examples=500)
@given(pattern=pieces, value=st.text(alphabet="ab/+#.[]$", max_size=12))
def test_wildcards_agree_with_an_independent_model(pattern, value):
    assert iam.matches(pattern, value) == reference_match(pattern, value)


statements = st.fixed_dictionaries({
    "Effect": st.sampled_from(["Allow", "Deny"]),
    "Action": st.sampled_from(["iot:*", "iot:Publish", "iot:Receive", ["iot:Publish", "iot:Subscribe"]]),
    "Resource": st.lists(st.sampled_from([f"{ARN}:*", f"{ARN}:topic/a/*", f"{ARN}:topic/a/b", f"{ARN}:topic/?/b",
                                          f"{ARN}:topicfilter/a/*", "*"]), min_size=1, max_size=3),
})
policies = st.lists(st.builds(lambda s: policy(*s), st.lists(statements, max_size=4)), min_size=1, max_size=3)
requests = st.tuples(st.sampled_from(["iot:Publish", "iot:Receive", "iot:Subscribe"]),
                     st.sampled_from([f"{ARN}:topic/a/b", f"{ARN}:topic/a/c/d", f"{ARN}:topic/x/b",
                                      f"{ARN}:topicfilter/a/#", f"{ARN}:topic/a"]))


def model(policies, action, resource) -> bool:
    """IAM's decision written out plainly: no matching Deny anywhere, a matching Allow in every policy."""
    def hits(statement):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        return any(reference_match(a.lower(), action.lower()) for a in actions) and \
            any(reference_match(r, resource) for r in statement["Resource"])

    every = [s for p in policies for s in p["Statement"]]
    if any(s["Effect"] == "Deny" and hits(s) for s in every):
        return False
    return all(any(s["Effect"] == "Allow" and hits(s) for s in p["Statement"]) for p in policies)


@settings(max_examples=500)
@given(policies, requests)
def test_decisions_agree_with_a_plain_model_of_iam(policies, request):
    action, resource = request
    assert iam.is_allowed(policies, action, resource) == model(policies, action, resource)


@given(policies, requests, statements)
def test_adding_a_deny_never_grants_more(policies, request, statement):
    action, resource = request
    denied = [*policies[:-1], policy(*policies[-1]["Statement"], {**statement, "Effect": "Deny"})]
    assert not (iam.is_allowed(denied, action, resource) and not iam.is_allowed(policies, action, resource))


@given(policies, policies, requests)
def test_a_session_policy_never_grants_more_than_the_role(role, session, request):
    action, resource = request
    if iam.is_allowed([*role, *session], action, resource):
        assert iam.is_allowed(role, action, resource)


CONNECT = {"iot:clientid": "c1", "aws:sourceip": "127.0.0.1", "iot:connectattributes": [], "iot:lastwilltopic": []}


@pytest.mark.parametrize("statement, resource, context, expected", [
    # policy variables: the request's value; none for it (no thing registry), the statement never allows
    (allow("iot:Publish", f"{ARN}:topic/clients/${{iot:ClientId}}/*"), f"{ARN}:topic/clients/c1/x", CONNECT, True),
    (allow("iot:Publish", f"{ARN}:topic/clients/${{iot:ClientId}}/*"), f"{ARN}:topic/clients/c2/x", CONNECT, False),
    (allow("iot:Publish", f"{ARN}:topic/things/${{iot:Connection.Thing.ThingName}}"), f"{ARN}:topic/things/c1",
     CONNECT, False),
    (allow("iot:Publish", f"{ARN}:topic/users/${{cognito-identity.amazonaws.com:sub}}"),
     f"{ARN}:topic/users/local:1", {"cognito-identity.amazonaws.com:sub": "local:1"}, True),
    (allow("iot:Publish", f"{ARN}:topic/users/${{cognito-identity.amazonaws.com:sub}}"),
     f"{ARN}:topic/users/local:1", {}, False),  # keys that are not Cognito's
    (allow("iot:Publish", f"{ARN}:topic/odd${{*}}name"), f"{ARN}:topic/odd*name", {}, True),  # ${*}: a literal *
    (allow("iot:Publish", f"{ARN}:topic/odd${{*}}name"), f"{ARN}:topic/oddXname", {}, False),
    # the Connect policy examples' conditions
    (allow("iot:Connect", "*", Condition={"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["LastWill"]}}),
     f"{ARN}:client/c1", CONNECT, True),  # a clean connect, no will: nothing outside the list
    (allow("iot:Connect", "*", Condition={"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["LastWill"]}}),
     f"{ARN}:client/c1", {**CONNECT, "iot:connectattributes": ["LastWill"]}, True),
    (allow("iot:Connect", "*", Condition={"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["LastWill"]}}),
     f"{ARN}:client/c1", {**CONNECT, "iot:connectattributes": ["PersistentConnect"]}, False),
    (allow("iot:Connect", "*", Condition={"ArnEquals": {"iot:LastWillTopic": f"{ARN}:topic/my/lastwill"}}),
     f"{ARN}:client/c1", {**CONNECT, "iot:lastwilltopic": [f"{ARN}:topic/my/lastwill"]}, True),
    (allow("iot:Connect", "*", Condition={"ArnEquals": {"iot:LastWillTopic": f"{ARN}:topic/my/lastwill"}}),
     f"{ARN}:client/c1", CONNECT, False),  # no will: no value to equal
    (allow("iot:Connect", "*", Condition={"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}), f"{ARN}:client/c1",
     CONNECT, True),
    (allow("iot:Connect", "*", Condition={"NotIpAddress": {"aws:SourceIp": "127.0.0.0/8"}}), f"{ARN}:client/c1",
     CONNECT, False),
    (allow("iot:Connect", "*", Condition={"StringLike": {"iot:ClientId": "c?"}}), f"{ARN}:client/c1", CONNECT, True),
    # what cannot be evaluated here never allows: a key not modelled, an operator not known
    (allow("iot:Connect", "*", Condition={"Bool": {"aws:SecureTransport": "true"}}), f"{ARN}:client/c1", CONNECT, False),
    (allow("iot:Connect", "*", Condition={"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}),
     f"{ARN}:client/c1", CONNECT, False),
])
def test_policy_variables_and_conditions(statement, resource, context, expected):
    action = statement["Action"]
    assert iam.is_allowed([policy(statement)], action, resource, context) is expected


def test_a_deny_that_cannot_be_evaluated_denies():
    """Never more generous than AWS: a Deny whose variable or condition is unknown here holds."""
    everything = allow("iot:*", "*")
    for unknown in (deny("iot:Publish", f"{ARN}:topic/${{iot:Connection.Thing.ThingName}}"),
                    deny("iot:Publish", "*", Condition={"Bool": {"aws:SecureTransport": "false"}})):
        assert not iam.is_allowed([policy(everything, unknown)], "iot:Publish", f"{ARN}:topic/a", CONNECT)
    assert iam.is_allowed([policy(everything, deny("iot:Subscribe", "*"))], "iot:Publish", f"{ARN}:topic/a", CONNECT)


@pytest.mark.parametrize("client_id, resource, expected", [
    ("c1", f"{ARN}:topic/clients/c1/x", True),
    ("*", f"{ARN}:topic/clients/c2/x", False),  # a client id `*` is a literal *, not a wildcard
    ("*", f"{ARN}:topic/clients/*/x", True),
    ("c?", f"{ARN}:topic/clients/c2/x", False),
    ("c\x00", f"{ARN}:topic/clients/c*/x", False),
])
def test_what_a_variable_stands_for_is_literal(client_id, resource, expected):
    """A request's value in a policy variable cannot widen the pattern: keys for `client/ID-*` may
    connect as `ID-*`, which must not reach `clients/ID-2/...`."""
    statement = allow("iot:Publish", f"{ARN}:topic/clients/${{iot:ClientId}}/*")
    assert iam.is_allowed([policy(statement)], "iot:Publish", resource, {"iot:clientid": client_id}) is expected


@pytest.mark.parametrize("condition, context, expected", [
    ({"StringEquals": {"iot:ClientId": "${*}"}}, {"iot:clientid": "*"}, True),  # ${*} is the character
    ({"StringNotEquals": {"iot:ClientId": "${*}"}}, {"iot:clientid": "*"}, False),
    ({"StringEquals": {"iot:ClientId": "${iot:ClientId}"}}, {"iot:clientid": "a*"}, True),
    ({"ForAnyValue:StringNotEquals": {"iot:ConnectAttributes": "LastWill"}}, {"iot:connectattributes": []}, False),
    ({"ForAnyValue:StringEqualsIfExists": {"iot:ConnectAttributes": "LastWill"}}, {"iot:connectattributes": []},
     False),  # ForAnyValue on no values fails, IfExists or not
    ({"ForAllValues:StringEquals": {"iot:ConnectAttributes": "LastWill"}}, {"iot:connectattributes": []}, True),
    ({"Null": {"iot:LastWillTopic": True}}, {"iot:lastwilltopic": []}, True),  # JSON true, as IAM reads it
    ({"Null": {"iot:LastWillTopic": False}}, {"iot:lastwilltopic": []}, False),
    ({"Bool": {"iot:Connection.Thing.IsAttached": False}}, {"iot:connection.thing.isattached": "false"}, True),
    ({"NumericNotEquals": {"iot:LastWillTopic": "1"}}, {"iot:lastwilltopic": []}, False),  # not known here
    ({"Sometimes:StringEquals": {"iot:ClientId": "c1"}}, {"iot:clientid": "c1"}, False),
])
def test_conditions_as_iam_reads_them(condition, context, expected):
    statement = allow("iot:Connect", "*", Condition=condition)
    assert iam.is_allowed([policy(statement)], "iot:Connect", f"{ARN}:client/c1", context) is expected


def test_a_deny_with_a_negated_operator_not_known_here_still_denies():
    statements = [allow("iot:*", "*"), deny("iot:Connect", "*", Condition={"NumericNotEquals": {"iot:LastWillTopic": "1"}})]
    assert not iam.is_allowed([policy(*statements)], "iot:Connect", f"{ARN}:client/c1", {"iot:lastwilltopic": []})
