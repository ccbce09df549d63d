"""--debug: one line per wire event on stderr (keys, connection, CONNACK, SUBACK, PUBACK, DISCONNECT),
never a secret; and refusals named by their reason code."""

import json
import re

import pytest

from iotnotify.mqtt.outcome import reason
from tests.helpers import Cli
from tests.test_aws_rules import scoped, unlisted


def debug_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("iotnotify: debug: +")]


def secrets(cli: Cli) -> list[str]:
    keys = json.loads(cli.run("keys", "--json").stdout)
    return [keys["secretKey"], keys["sessionToken"]]


@pytest.mark.parametrize("where", ["before", "after"])
def test_send_traces_keys_connect_connack_puback_and_disconnect_without_secrets(cli, topic, where):
    # the MQTT trace: one message would go over HTTPS by itself (its trace: test_https_publish.py)
    args = ["--debug", "send", "--via", "mqtt", topic, "hi"] if where == "before" else \
        ["send", topic, "hi", "--via", "mqtt", "--debug"]
    result = cli.run("--no-cache", *args)
    assert result.returncode == 0, result.stderr
    lines = debug_lines(result.stderr)
    assert lines == result.stderr.splitlines()  # nothing else on stderr, every line a trace line
    text = "\n".join(lines)
    assert "keys: GET http://127.0.0.1:" in text and "keys: HTTP 200" in text
    assert "keys: fetched from http://127.0.0.1:" in text and "access key ASIA" in text and "expire 20" in text
    assert "(MQTT 5, keep-alive 60 s): TLS, WebSocket upgrade, CONNECT" in text
    connack = next(line for line in lines if "CONNACK after" in line)
    for maximum in ("0x00 success", "receive maximum 100", "maximum packet size", "topic alias maximum 8",
                    "maximum QoS 1", "keep-alive 60 s", "session present False"):  # the stack says AWS's (test_gateway)
        assert maximum in connack
    assert f"PUBACK for '{topic}': 0x00 success" in text
    assert lines[-2].endswith("DISCONNECT to the broker")
    assert re.search(r"client stopped after \d+ ms$", lines[-1])
    for secret in secrets(cli):
        assert secret not in result.stderr


def test_the_environment_turns_it_on_and_the_cache_is_named(cli, topic):
    assert cli.run("keys").returncode == 0  # cached now
    result = cli.run("send", topic, "hi", env={"IOTNOTIFY_DEBUG": "1"})
    assert result.returncode == 0
    assert "keys: from the cache for http://127.0.0.1:" in result.stderr


def test_without_it_nothing_is_traced(cli, topic):
    result = cli.run("send", topic, "hi")
    assert (result.returncode, result.stderr) == (0, "")


def test_mqtt_3_1_1_is_traced_too(cli, topic):
    result = cli.run("send", topic, "hi", "--protocol", "3.1.1", "--debug")
    assert result.returncode == 0, result.stderr
    assert "(MQTT 3.1.1, keep-alive 60 s)" in result.stderr
    assert "CONNACK after" in result.stderr and f"PUBACK for '{topic}': 0x00 success" in result.stderr


def test_suback_per_filter_and_puback_refusals_with_their_codes(cli, stack, tmp_path, topic, fake_endpoint):
    narrow = scoped(cli, stack, f"{topic}/mine", tmp_path)
    flags = [*unlisted(json.loads(narrow.run("keys", "--json").stdout), fake_endpoint), "--no-cache"]
    sub = cli.run(*flags, "subscribe", f"{topic}/mine", f"{topic}/other", "--partial", "-W", "1", "--debug")
    assert f"SUBACK '{topic}/mine': granted QoS 1" in sub.stderr
    assert f"SUBACK '{topic}/other': 0x87 not authorized" in sub.stderr
    sent = cli.run(*flags, "send", f"{topic}/other", "no", "--via", "mqtt", "--debug")
    assert sent.returncode == 10
    assert f"PUBACK for '{topic}/other': 0x87 not authorized" in sent.stderr
    assert sent.stderr.splitlines()[-1] == (
        f"iotnotify: error: 1 of 1 message was not delivered (1 refused by the broker: 0x87 not authorized to "
        f"publish to '{topic}/other')")


def test_keys_endpoint_retries_are_traced(fake_endpoint, tmp_path):
    from tests.helpers import tutorial_keys, user_env

    fake_endpoint.then(500, {"message": "busy"}).answer(body=tutorial_keys())
    result = Cli(user_env(tmp_path)).run("keys", "--endpoint", fake_endpoint.url, "--debug")
    assert result.returncode == 0, result.stderr
    assert "answered HTTP 500: busy; attempt 1 of 3, the next in" in result.stderr


def test_a_disconnect_from_the_broker_is_traced_with_its_reason(cli, tmp_path, topic):
    owner = json.loads(cli.run("keys", "--json").stdout)["clientId"]
    same = ["--client-id", f"{owner}-same"]
    first = cli.subscriber(tmp_path, topic, *same, "-W", "60", "--debug")
    second = cli.subscriber(tmp_path, topic, *same, "-W", "2")
    _, err = first.communicate(timeout=30)
    second.communicate(timeout=30)
    assert first.returncode == 5
    assert "DISCONNECT from the broker: 0x8E session taken over" in err.decode()


def test_reason_codes_read_as_words_with_the_brokers_string():
    assert reason(0x87) == "0x87 not authorized"
    assert reason(0x97, "too many subscriptions") == "0x97 quota exceeded (too many subscriptions)"
    assert reason(0x00) == "0x00 success"
    assert reason(0xF0) == "0xF0 refused"
