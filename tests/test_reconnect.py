"""Long-running subscribers through broker restarts: state changes on stderr, resubscribing, and
giving up when told to. Each test has a broker of its own to stop and start."""

import subprocess

import pytest
from conftest import broker_behind_front, tutorial_keys, wait_for


@pytest.fixture
def own_broker(tmp_path, fake_endpoint):
    """A broker of this test's own, and the flags that point `iotnotify` at it."""
    with broker_behind_front(tmp_path) as (broker, wss, ca_file):
        fake_endpoint.answer(body=tutorial_keys(port=wss))
        yield broker, ["--endpoint", fake_endpoint.url, "--ca-file", ca_file]


def test_subscribe_reports_reconnection_on_stderr_and_receives_after_it(cli, own_broker, tmp_path):
    broker, flags = own_broker
    sub = cli.subscriber(tmp_path, *flags, "t", "-C", "1", "-W", "60")
    broker.stop()
    broker.start()
    wait_for(lambda: subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-t", "t", "-m", "after", "-q", "1"]
                                    ).returncode == 0 and sub.poll() is not None, 60, "the message after the restart")
    out, err = sub.communicate()
    assert sub.returncode == 0 and out == b"after\n"
    assert "iotnotify: connection lost, reconnecting" in err.decode() and "iotnotify: reconnected" in err.decode()


@pytest.mark.parametrize("flag, message", [
    (["--no-reconnect"], "lost (--no-reconnect)"),
    (["--max-reconnects", "2"], "gave up after 2 reconnection attempts"),
])
def test_subscribe_gives_up_when_told_to(cli, own_broker, tmp_path, flag, message):
    broker, flags = own_broker
    sub = cli.subscriber(tmp_path, *flags, "t", *flag)
    broker.stop()
    out, err = sub.communicate(timeout=90)
    assert sub.returncode == 5
    assert err.decode().splitlines()[-1].startswith("iotnotify: error: ") and message in err.decode()
