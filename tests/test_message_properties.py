"""MQTT 5 message properties: sent by `send`, shown by `subscribe --json`/`--format` and `tail`,
checked by a peer (mosquitto_sub/_pub on the plain listener), and held to AWS IoT Core's limits."""

import base64
import io
import json
import re
import subprocess

import pytest
from rich.console import Console

from iotnotify.cli.live import TailState, render
from iotnotify.messages import Message
from iotnotify.properties import Properties, from_record
from tests.helpers import mosquitto_subscriber

PROPERTY_FLAGS = ["--user-property", "team=ops", "--user-property", "team=dev", "--user-property", "k=a=b",
                  "--content-type", "application/json", "--response-topic", "test/replies",
                  "--correlation-data", "req-17", "--message-expiry", "300", "--payload-format", "utf8"]


def received(sub):
    out, err = sub.communicate(timeout=30)
    assert sub.returncode == 0, err
    return out.decode()


def test_every_property_arrives_in_subscribe_json(cli, tmp_path, topic):
    sub = cli.subscriber(tmp_path, topic, "-C", "1", "-W", "20", "--json")
    sent = cli.run("send", topic, '{"a": 1}', *PROPERTY_FLAGS)
    assert sent.returncode == 0, sent.stderr
    record = json.loads(received(sub))
    *given, (key, value) = record["user_properties"]
    assert given == [["team", "ops"], ["team", "dev"], ["k", "a=b"]]  # order and duplicates kept
    assert key == "iotnotify-id" and re.fullmatch("[0-9a-f]{32}", value)  # send's own, last
    assert record["content_type"] == "application/json"
    assert record["response_topic"] == "test/replies"
    assert record["correlation_data"] == "req-17"
    assert "correlation_encoding" not in record
    assert 295 <= record["message_expiry"] <= 300  # what is left of it
    assert record["payload_format"] == "utf8"


def test_a_message_without_properties_has_no_property_fields(cli, tmp_path, topic):
    sub = cli.subscriber(tmp_path, topic, "-C", "1", "-W", "20", "--json")
    assert cli.run("send", topic, "plain").returncode == 0
    assert set(json.loads(received(sub))) == {"topic", "payload", "qos", "retain", "time"}


def test_binary_correlation_data_goes_as_base64(cli, tmp_path, topic):
    sub = cli.subscriber(tmp_path, topic, "-C", "2", "-W", "20", "--json")
    assert cli.run("send", topic, "one", "--correlation-data", "hex:00ff10").returncode == 0
    assert cli.run("send", topic, "two", "--correlation-data", "base64:" + base64.b64encode(b"ok").decode()).returncode == 0
    first, second = (json.loads(line) for line in received(sub).splitlines())
    assert (first["correlation_data"], first["correlation_encoding"]) == (base64.b64encode(b"\x00\xff\x10").decode(),
                                                                          "base64")
    assert (second["correlation_data"], second.get("correlation_encoding")) == ("ok", None)


def test_format_fields_of_the_properties(cli, tmp_path, topic):
    sub = cli.subscriber(tmp_path, topic, "-C", "2", "-W", "20", "--format",
                         "{user_properties}|{content_type}|{response_topic}|{correlation_data}|{payload_format}")
    assert cli.run("send", topic, "x", "--user-property", "a=1", "--content-type", "text/plain", "--no-id",
                   "--response-topic", "test/r", "--correlation-data", "c1", "--payload-format", "bytes").returncode == 0
    assert cli.run("send", topic, "y").returncode == 0
    assert received(sub).splitlines() == ['[["a","1"]]|text/plain|test/r|c1|bytes', "||||"]


def test_mosquitto_sub_sees_the_properties_iotnotify_sent(cli, stack, topic):
    sub = mosquitto_subscriber(stack.mqtt_port, topic, "-V", "5", "-C", "1", "-W", "20", "-F", "%P|%C|%R|%D|%E|%F|%p")
    sent = cli.run("send", topic, "hi", "--user-property", "team=ops", "--content-type", "text/plain", "--no-id",
                   "--response-topic", "test/replies", "--correlation-data", "abc", "--message-expiry", "60",
                   "--payload-format", "utf8")
    assert sent.returncode == 0, sent.stderr
    rest, _ = sub.communicate(timeout=30)
    (line,) = [x for x in rest.decode().splitlines() if x.endswith("|hi")]
    user, content, response, correlation, expiry, indicator, payload = line.split("|")
    assert (user, content, response, correlation, indicator, payload) == (
        "team:ops", "text/plain", "test/replies", "abc", "1", "hi")
    assert 55 <= int(expiry) <= 60


def test_iotnotify_subscribe_sees_the_properties_mosquitto_pub_sent(cli, stack, tmp_path, topic):
    sub = cli.subscriber(tmp_path, topic, "-C", "1", "-W", "20", "--json")
    subprocess.run(["mosquitto_pub", "-V", "5", "-p", str(stack.mqtt_port), "-h", "127.0.0.1", "-q", "1", "-t", topic,
                    "-m", "from mosquitto", "-D", "publish", "user-property", "origin", "peer",
                    "-D", "publish", "content-type", "text/plain"], check=True, timeout=10)
    record = json.loads(received(sub))
    assert (record["user_properties"], record["content_type"]) == ([["origin", "peer"]], "text/plain")


@pytest.mark.parametrize("flag", [["--user-property", "a=b"], ["--content-type", "x"], ["--response-topic", "t"],
                                  ["--correlation-data", "c"], ["--message-expiry", "5"], ["--payload-format", "utf8"]])
def test_properties_with_mqtt_3_1_1_are_a_usage_error_naming_the_flag(cli, topic, flag):
    result = cli.run("send", topic, "x", "--protocol", "3.1.1", *flag)
    assert result.returncode == 2
    assert result.stderr == f"iotnotify: error: {flag[0]} needs MQTT 5: --protocol 3.1.1 has no message properties\n"


@pytest.mark.parametrize("flags, error", [
    (["--user-property", "big=" + "x" * 8200], "user properties of 8203 bytes, but AWS IoT Core takes at most 8192"),
    (["--response-topic", "a/+/b"], "--response-topic: "),
    (["--user-property", "novalue"], "--user-property 'novalue' is not KEY=VALUE"),
    (["--correlation-data", "hex:zz"], "--correlation-data 'hex:zz': not valid hex"),
])
def test_properties_over_the_limits_are_refused_before_connecting(cli, stack, topic, flags, error):
    result = cli.run("send", topic, "x", *flags)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"iotnotify: error: {error}")
    assert "Traceback" not in result.stderr


def test_a_message_expiry_over_7_days_is_made_7_days_as_aws_does_and_said(cli, tmp_path, topic):
    """AWS IoT Core adjusts a message expiry interval over 604800 s (7 days) to it rather than
    refusing it: the client does the same under AWS's rules, and says so."""
    sub = cli.subscriber(tmp_path, topic, "-C", "1", "-W", "20", "--json")
    sent = cli.run("send", "--via", "mqtt", topic, "x", "--message-expiry", "700000")
    assert sent.returncode == 0
    assert sent.stderr == ("iotnotify: warning: --message-expiry 700000: AWS IoT Core keeps a message at most 604800 "
                           "seconds (7 days) and shortens a longer expiry to that\n")
    assert 604790 <= json.loads(received(sub))["message_expiry"] <= 604800


def test_payload_format_utf8_refuses_a_payload_that_is_not(cli, tmp_path, topic):
    sub = cli.subscriber(tmp_path, topic, "-C", "1", "-W", "20")
    result = cli.run_bytes("send", "-l", topic, "--payload-format", "utf8", input=b"\xff\xfe\nfine\n")
    assert result.returncode == 6
    assert b"message 1 not sent: --payload-format utf8, but the payload is not UTF-8" in result.stderr
    assert received(sub) == "fine\n"  # the other lines still go out


def test_tail_shows_a_marker_or_the_whole_properties_by_width():
    state = TailState(5)
    state.add(Message("t/a", b"payload", properties=Properties((("team", "ops"),), "application/json", "t/r", b"c1",
                                                                 30, "utf8")))
    narrow, wide = (_text(render(state, width, 10)) for width in (80, 160))
    assert "⚑ 1p application/json ↩ 30s" in narrow
    assert "⚑ team=ops content_type=application/json response_topic=t/r correlation_data=c1 message_expiry=30" in wide


def test_tail_shows_the_marker_where_the_whole_properties_do_not_fit():
    """120 columns and a long payload: not the properties cut short (the expiry last, so gone), the marker."""
    state = TailState(5)
    state.add(Message("t/a", b"p" * 200, properties=Properties((("team", "ops"),), "application/json", "t/r", b"c1",
                                                                30, "utf8")))
    shown = _text(render(state, 120, 10))
    assert "⚑ 1p application/json ↩ 30s" in shown and "message_expiry" not in shown


def test_records_read_back_give_the_same_properties():
    properties = Properties((("a", "1"), ("a", "2")), "text/plain", "t/r", b"\x00\x01", 9, "bytes")
    assert from_record(json.loads(json.dumps(properties.record()))) == properties


def _text(renderable) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()
