"""Property-based tests (hypothesis): topic rules and parsing of endpoint answers hold for any input."""

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from iotnotify.errors import KeysError, UsageError
from iotnotify.keys import parse_keys
from iotnotify.server.policy import PolicyError, check_policy_topic, session_policy
from iotnotify.topics import check_filter, check_topic

topic_text = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("/+#$*? "), max_size=300)


@given(topic_text, st.booleans())
def test_a_topic_is_accepted_only_if_it_follows_the_rules(topic, aws):
    try:
        check_topic(topic, aws)
    except UsageError:
        return
    data = topic.encode("utf-8")
    assert topic and "+" not in topic and "#" not in topic and "\x00" not in topic
    assert len(data) <= 256
    assert not aws or topic.count("/") <= 7


@given(topic_text, st.booleans())
def test_a_filter_uses_wildcards_only_as_whole_levels(topic_filter, aws):
    try:
        check_filter(topic_filter, aws)
    except UsageError:
        return
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        assert "+" not in level or level == "+"
        assert "#" not in level or (level == "#" and index == len(levels) - 1)
    assert len(topic_filter.encode()) <= 256 and (not aws or topic_filter.count("/") <= 7)


@given(topic_text)
def test_nothing_that_could_widen_a_policy_gets_into_one(topic):
    try:
        check_policy_topic(topic)
    except PolicyError:
        return
    assert not set(topic) & set("*?${}#+ \t\n,\"\\")
    policy = str(session_policy("eu-west-1", "123456789012", "iotnotify-0", [topic]))
    assert policy.count("*") == 2  # only our own: client/<id>-*, and the share name of topicfilter/$share/*/TOPIC
    assert policy.count("$share/*/") == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=10)
fields = ["iotEndpoint", "region", "accessKey", "secretKey", "sessionToken", "port", "expiration", "clientId"]
answers = st.dictionaries(st.sampled_from(fields) | st.text(max_size=8), json_values | st.text(string.printable),
                          max_size=9)


@settings(max_examples=300)
@given(answers | json_values)
def test_any_endpoint_answer_parses_or_is_a_keys_error_without_secrets(data):
    try:
        keys = parse_keys(data)
    except KeysError as e:
        if isinstance(data, dict):
            for name in ("secretKey", "sessionToken"):
                value = data.get(name)
                if isinstance(value, str) and len(value) > 12:
                    assert value not in str(e)  # noqa: PT017 - any error, so long as it leaks no secret
        return
    assert keys.host and keys.region and keys.access_key and keys.secret_key and keys.session_token
    assert 0 < keys.port < 65536 and keys.expiration.tzinfo is not None
