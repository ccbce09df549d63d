"""`retained list|get|clear`: over MQTT against the local stack (AWS's rules: exact topics only),
against a broker that is not AWS (wildcards), and through AWS IoT's API (--aws), whose
ListRetainedMessages/GetRetainedMessage moto 5.2 does not serve: botocore's Stubber stands in
for AWS there, checking our requests against the service's own model."""

import datetime as dt
import json

import boto3
import pytest
from botocore.stub import Stubber

from iotnotify.retained.aws import clear_retained, get_retained, list_retained


def test_get_and_clear_an_exact_topic_under_aws_rules(cli, topic):
    assert cli.run("send", "--retain", f"{topic}/config", "v1").returncode == 0
    got = cli.run("retained", "get", f"{topic}/config")
    assert (got.returncode, got.stdout) == (0, "v1\n")
    record = json.loads(cli.run("retained", "get", f"{topic}/config", "--json").stdout)
    assert (record["topic"], record["payload"], record["retain"]) == (f"{topic}/config", "v1", True)
    dry = cli.run("retained", "clear", f"{topic}/config", "--dry-run")
    assert (dry.returncode, dry.stdout, dry.stderr) == (0, f"{topic}/config\n",
                                                        "1 retained message would be cleared (--dry-run)\n")
    assert cli.run("retained", "get", f"{topic}/config").stdout == "v1\n"  # the dry run changed nothing
    cleared = cli.run("retained", "clear", f"{topic}/config")
    assert (cleared.returncode, cleared.stderr) == (0, "1 retained message cleared\n")
    gone = cli.run("retained", "get", f"{topic}/config")
    assert (gone.returncode, gone.stderr) == (7, f"iotnotify: error: no retained message on '{topic}/config'\n")


def test_a_wildcard_under_aws_rules_points_to_aws(cli, topic):
    result = cli.run("retained", "list", f"{topic}/#")
    assert result.returncode == 2
    assert "AWS IoT Core sends a retained message only to a subscription to its exact topic: use --aws" in result.stderr


def test_a_broker_that_is_not_aws_lists_and_clears_under_a_wildcard(fast_cli, topic):
    """The permissive stack: no AWS rules, so Mosquitto sends retained messages to wildcard filters."""
    for name in ("a", "b", "c/d"):
        assert fast_cli.run("send", "--retain", f"{topic}/{name}", f"value {name}").returncode == 0
    listed = fast_cli.run("retained", "list", f"{topic}/#")
    assert sorted(listed.stdout.split()) == [f"{topic}/a", f"{topic}/b", f"{topic}/c/d"]
    assert sorted(fast_cli.run("retained", "list", f"{topic}/+").stdout.split()) == [f"{topic}/a", f"{topic}/b"]
    dry = fast_cli.run("retained", "clear", f"{topic}/#", "--dry-run")
    assert dry.stderr == "3 retained messages would be cleared (--dry-run)\n"
    cleared = fast_cli.run("retained", "clear", f"{topic}/#")
    assert (cleared.returncode, cleared.stderr) == (0, "3 retained messages cleared\n")
    assert fast_cli.run("retained", "list", f"{topic}/#").stdout == ""
    assert fast_cli.run("retained", "clear", f"{topic}/#").stderr == "0 retained messages cleared\n"


@pytest.fixture
def iot_data():
    client = boto3.client("iot-data", region_name="eu-west-1", endpoint_url="https://data.example",
                          aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def test_aws_list_pages_through_and_filters(iot_data):
    client, stub = iot_data
    modified = int(dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC).timestamp() * 1000)
    stub.add_response("list_retained_messages", {"retainedTopics": [
        {"topic": "devices/1/state", "payloadSize": 12, "qos": 1, "lastModifiedTime": modified},
        {"topic": "other/x", "payloadSize": 3, "qos": 0, "lastModifiedTime": modified}], "nextToken": "t2"}, {})
    stub.add_response("list_retained_messages", {"retainedTopics": [
        {"topic": "devices/2/state", "payloadSize": 5, "qos": 0, "lastModifiedTime": modified}]}, {"nextToken": "t2"})
    found = list_retained(client, "devices/+/state")
    assert [(r.topic, r.size, r.qos) for r in found] == [("devices/1/state", 12, 1), ("devices/2/state", 5, 0)]
    assert found[0].modified == modified / 1000
    assert found[0].record() == {"topic": "devices/1/state", "payload_size": 12, "qos": 1,
                                 "last_modified": "2026-11-29T12:00:00Z"}  # `retained list --json`


def test_aws_get_and_clear(iot_data):
    client, stub = iot_data
    stub.add_response("get_retained_message", {"topic": "config/app", "payload": b"v1", "qos": 1,
                                               "lastModifiedTime": 1000}, {"topic": "config/app"})
    message = get_retained(client, "config/app")
    assert (message.topic, message.payload, message.qos, message.retain) == ("config/app", b"v1", 1, True)
    stub.add_response("publish", {}, {"topic": "config/app", "qos": 1, "retain": True, "payload": b""})
    clear_retained(client, ["config/app"])


def test_aws_nothing_retained_is_none_and_other_errors_are_one_line(iot_data):
    from iotnotify.errors import AwsError

    client, stub = iot_data
    stub.add_client_error("get_retained_message", "ResourceNotFoundException", "No retained message",
                          expected_params={"topic": "none"})
    assert get_retained(client, "none") is None  # `retained get` then exits 7, as over MQTT
    stub.add_client_error("get_retained_message", "UnauthorizedException", "Access denied",
                          expected_params={"topic": "secret"})
    with pytest.raises(AwsError, match="AWS GetRetainedMessage failed: UnauthorizedException: Access denied"):
        get_retained(client, "secret")
