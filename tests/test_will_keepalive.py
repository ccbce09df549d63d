"""The will (what the broker publishes when a client vanishes) and the keep-alive, against the
local stack with AWS IoT Core's rules."""

import signal
import subprocess
import time

import pytest

from tests.helpers import IOTNOTIFY, broker_behind_front, tutorial_keys, wait_for


def finish(proc, timeout=30):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_the_will_is_published_when_the_client_vanishes(cli, tmp_path, topic, protocol):
    watcher = cli.subscriber(tmp_path, f"{topic}/will", "-C", "1", "-W", "30", "-v")
    flag = tmp_path / "vanishing.ready"
    vanishing = cli.start("subscribe", f"{topic}/in", "--protocol", protocol, "--will-topic", f"{topic}/will",
                          "--will-message", "worker gone", "--ready-file", str(flag))
    wait_for(flag.exists, 20, "the vanishing client subscribed")
    vanishing.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker publishes the will
    vanishing.communicate(timeout=10)
    code, out, err = finish(watcher)
    assert code == 0, err
    assert out == f"{topic}/will worker gone\n"


def test_a_clean_exit_publishes_no_will(cli, tmp_path, topic):
    watcher = cli.subscriber(tmp_path, f"{topic}/will", "-W", "4")
    sub = cli.subscriber(tmp_path, f"{topic}/in", "-C", "1", "-W", "20", "--will-topic", f"{topic}/will",
                         "--will-message", "should not come")
    assert cli.run("send", f"{topic}/in", "done").returncode == 0
    assert finish(sub)[0] == 0  # exits with a DISCONNECT
    code, out, _ = finish(watcher)
    assert (code, out) == (7, "")


def test_send_lines_with_a_retained_will(cli, tmp_path, topic):
    sender = subprocess.Popen([*IOTNOTIFY, "send", "-l", f"{topic}/data", "--will-topic", f"{topic}/status",
                               "--will-message", "sender died", "--will-retain", "--will-qos", "1"],
                              stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=cli.env)
    watcher = cli.subscriber(tmp_path, f"{topic}/data", "-C", "1", "-W", "20")
    sender.stdin.write(b"one\n")
    sender.stdin.flush()
    assert finish(watcher)[1] == "one\n"  # connected, and sending
    sender.send_signal(signal.SIGKILL)
    sender.communicate(timeout=10)
    later = cli.run("subscribe", f"{topic}/status", "--retained-only", "-v")  # the will was retained
    assert later.stdout == f"{topic}/status sender died\n", later.stderr


def test_a_will_the_keys_may_not_publish_is_refused_before_connecting(cli, topic):
    result = cli.run("subscribe", topic, "-W", "5", "--will-topic", "elsewhere/will")
    assert result.returncode == 10
    assert result.stderr.startswith("iotnotify: error: not allowed: the keys may not publish to 'elsewhere/will'")
    assert result.stderr.rstrip().endswith("(the will)")


@pytest.mark.parametrize("flags, error", [
    (["--will-message", "x"], "--will-message, --will-retain and --will-delay need --will-topic"),
    (["--will-topic", "test/w", "--will-delay", "5", "--protocol", "3.1.1"], "--will-delay needs MQTT 5"),
    (["--will-topic", "test/+"], "--will-topic: "),
    (["--keepalive", "10"], "--keepalive 10: AWS IoT Core takes 30 to 1200 seconds"),
    (["--keepalive", "1201"], "--keepalive 1201: AWS IoT Core takes 30 to 1200 seconds"),
])
def test_bad_will_and_keepalive_flags_are_usage_errors(cli, topic, flags, error):
    result = cli.run("subscribe", topic, "-W", "5", *flags)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"iotnotify: error: {error}")


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_keepalive_30_the_least_aws_takes_connects_and_delivers(cli, tmp_path, topic, protocol):
    sub = cli.subscriber(tmp_path, topic, "-C", "1", "-W", "20", "--keepalive", "30", "--protocol", protocol)
    assert cli.run("send", topic, "hi", "--keepalive", "30", "--protocol", protocol).returncode == 0
    assert finish(sub)[:2] == (0, "hi\n")


@pytest.mark.parametrize("protocol, level", [("5", "p5"), ("3.1.1", "p2")])
def test_keepalive_from_the_environment_reaches_a_broker_without_aws_rules(cli, fake_endpoint, tmp_path, protocol,
                                                                            level):
    """A broker that is not AWS takes any keep-alive: the CONNECT says 2 s, and pings at that pace
    keep the connection through 6 s of silence (Mosquitto drops a client silent for 1.5 periods)."""
    with broker_behind_front(tmp_path) as (broker, wss, ca_file):
        fake_endpoint.answer(body=tutorial_keys(port=wss))
        env = {**cli.env, "IOTNOTIFY_KEEPALIVE": "2", "IOTNOTIFY_ENDPOINT": fake_endpoint.url,
               "IOTNOTIFY_CA_FILE": ca_file}
        flag = tmp_path / "ready"
        sub = subprocess.Popen([*IOTNOTIFY, "subscribe", "t", "-C", "1", "-W", "30", "--protocol", protocol,
                                "--ready-file", str(flag)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(flag.exists, 20, "subscribed")
        time.sleep(6)
        subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-t", "t", "-m", "still here", "-q", "1"], check=True)
        code, out, err = finish(sub)
        assert (code, out) == (0, "still here\n"), err
        assert "reconnect" not in err
        log = broker.log_file.read_text()
        assert f"({level}, c1, k2)" in log and "Received PINGREQ" in log


def test_keepalive_from_the_profile(cli, stack, tmp_path, topic):
    config = tmp_path / "config.toml"
    config.write_text(f'[profiles.local]\nendpoint = "{stack.endpoint}"\nca_file = "{stack.ca_file}"\nkeepalive = 10\n')
    config.chmod(0o600)
    result = cli.run("subscribe", topic, "-W", "5", env={"IOTNOTIFY_CONFIG": str(config)})
    assert result.returncode == 2
    assert result.stderr == "iotnotify: error: --keepalive 10: AWS IoT Core takes 30 to 1200 seconds\n"
