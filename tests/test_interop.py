"""Plain MQTT clients on the same broker (its plain listener) talk with iotnotify over wss."""

import subprocess

import pytest

from tests.helpers import mosquitto_subscriber


def test_mosquitto_pub_to_iotnotify_subscribe(cli, stack, tmp_path, topic):
    sub = cli.subscriber(tmp_path, topic, "-C", "2", "-W", "20", "-v")
    for text in ("from mosquitto_pub", "second"):
        subprocess.run(["mosquitto_pub", "-p", str(stack.mqtt_port), "-h", "127.0.0.1", "-q", "1",
                        "-t", topic, "-m", text], check=True, timeout=10)
    out, err = sub.communicate(timeout=30)
    assert sub.returncode == 0, err
    assert out.decode() == f"{topic} from mosquitto_pub\n{topic} second\n"


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_iotnotify_send_to_mosquitto_sub(cli, stack, topic, protocol):
    sub = mosquitto_subscriber(stack.mqtt_port, topic, "-C", "3", "-W", "20")
    result = cli.run("send", "--protocol", protocol, "-l", topic, input="a\nb\nc\n")
    assert result.returncode == 0, result.stderr
    rest, _ = sub.communicate(timeout=30)
    payloads = [line for line in rest.decode().splitlines() if line in ("a", "b", "c")]
    assert payloads == ["a", "b", "c"]
