"""Topic and filter rules: MQTT's, plus AWS IoT Core's hard limits where the broker is AWS."""

import re

import pytest

from iotnotify.errors import UsageError
from iotnotify.topics import (
    check_filter,
    check_payload,
    check_topic,
    is_aws_host,
    subscribe_batches,
)


@pytest.mark.parametrize("topic", ["a", "a/b/c", "/serverless/pubsub", "x" * 256, "é" * 128, "a b", "$SYS/x",
                                   "a\u00a0b", "\u202eevil", "emoji/\U0001f469\u200d\U0001f4bb", "\ue000private"])
def test_valid_topics_are_accepted(topic):
    assert check_topic(topic, aws=False) == topic


@pytest.mark.parametrize("topic, message", [
    ("", "empty"),
    ("a/+/b", "wildcard"),
    ("a/#", "wildcard"),
    ("x" * 257, "257 UTF-8 bytes"),
    ("é" * 129, "258 UTF-8 bytes"),
    ("a\x00b", "U\\+0000 \\(a control character\\)"),
    ("demo/a\x01b", "U\\+0001 \\(a control character\\)"),
    ("a\tb", "U\\+0009"),
    ("a\x7fb", "U\\+007F \\(a control character\\)"),
    ("a\x9fb", "U\\+009F"),
    ("a\uffffb", "U\\+FFFF \\(a Unicode noncharacter\\)"),
    ("a\ufdd0b", "U\\+FDD0 \\(a Unicode noncharacter\\)"),
    ("a\U0010fffeb", "U\\+10FFFE"),
    ("a\udcffb", "not valid UTF-8"),
])
def test_invalid_topics_are_refused(topic, message):
    with pytest.raises(UsageError, match=message):
        check_topic(topic, aws=False)


def test_aws_refuses_more_than_seven_slashes_in_a_topic():
    check_topic("a/" * 7 + "b", aws=True)
    check_topic("a/" * 8 + "b", aws=False)
    with pytest.raises(UsageError, match="8 '/' but AWS IoT Core allows at most 7"):
        check_topic("a/" * 8 + "b", aws=True)


@pytest.mark.parametrize("topic_filter", ["#", "+", "a/#", "a/+/c", "+/+", "/serverless/pubsub", "a/+/#"])
def test_valid_filters_are_accepted(topic_filter):
    assert check_filter(topic_filter, aws=True) == topic_filter


@pytest.mark.parametrize("topic_filter", ["", "a/#/b", "a#", "a/b#", "a+/b", "a/+b", "x" * 257, "a/\x1b]0;x\x07/#",
                                          "\uffff/+"])
def test_invalid_filters_are_refused(topic_filter):
    with pytest.raises(UsageError):
        check_filter(topic_filter, aws=False)


def test_aws_does_not_count_the_slashes_of_share_and_basic_ingest_prefixes():
    """`$share/NAME/` (2) and `$aws/rules/RULE/` (3) do not count against AWS's 7 slashes."""
    check_filter("$share/group/" + "a/" * 7 + "#", aws=True)
    check_topic("$aws/rules/my_rule/" + "a/" * 7 + "b", aws=True)
    with pytest.raises(UsageError, match="8 '/' but AWS IoT Core allows at most 7"):
        check_filter("$share/group/" + "a/" * 8 + "#", aws=True)
    with pytest.raises(UsageError, match="at most 7"):
        check_topic("$aws/other/x/" + "a/" * 5 + "b", aws=True)  # only rules/RULE/ is Basic Ingest's


def test_aws_refuses_deep_filters():
    with pytest.raises(UsageError, match="at most 7"):
        check_filter("+/" * 8 + "#", aws=True)


def test_payload_limit_is_128_kb_on_aws_only():
    check_payload(128 * 1024, aws=True)
    check_payload(128 * 1024 + 1, aws=False)
    with pytest.raises(UsageError, match="over AWS IoT Core's limit of 131072 bytes"):
        check_payload(128 * 1024 + 1, aws=True)


def test_more_than_eight_filters_go_in_several_subscribe_packets():
    filters = [f"t/{i}" for i in range(19)]
    batches = subscribe_batches(filters)
    assert [len(b) for b in batches] == [8, 8, 3]
    assert [f for batch in batches for f in batch] == filters


@pytest.mark.parametrize("host, aws", [
    ("abc123-ats.iot.us-east-1.amazonaws.com", True),
    ("ABC-ats.iot.cn-north-1.amazonaws.com.cn", True),
    ("127.0.0.1", False),
    ("localhost", False),
    ("amazonaws.com.evil.example", False),
])
def test_aws_hosts_are_recognised(host, aws):
    assert is_aws_host(host) is aws


@pytest.mark.parametrize("check, text, message", [
    (check_topic, "$aws/events/presence/connected/c1",
     "cannot publish to '$aws/events/presence/connected/c1': reserved by AWS IoT Core for subscribe only"),
    (check_topic, "$SYS/broker/load", ("cannot publish to '$SYS/broker/load': reserved by AWS IoT Core (every topic "
                                      "beginning with '$' but those it lists)")),
    (check_filter, "$aws/rules/store/#", ("cannot subscribe to '$aws/rules/store/#': reserved by AWS IoT Core for "
                                         "publish only")),
    (check_filter, "$share/g/$SYS/#", "cannot subscribe to '$share/g/$SYS/#': reserved by AWS IoT Core"),
])
def test_reserved_topics_are_refused_as_aws_iot_core_lists_them(check, text, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        check(text, True)
    check(text, False)  # another broker's rules are its own


@pytest.mark.parametrize("check, text", [(check_topic, "$aws/rules/store/readings"),
                                          (check_topic, "$aws/things/t1/shadow/update"),
                                          (check_filter, "$aws/events/presence/+/+"),
                                          (check_filter, "$share/g/$aws/events/#")])
def test_reserved_topics_aws_lists_are_allowed_for_what_it_lists(check, text):
    assert check(text, True) == text


@pytest.mark.parametrize("text, message", [("$share/g/", "a shared subscription is $share/NAME/FILTER"),
                                           ("$share//x", "share name ''"), ("$share/a+/x", "share name 'a+'")])
def test_malformed_shared_subscriptions_are_refused(text, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        check_filter(text, False)
