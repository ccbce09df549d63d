"""Persistent sessions as AWS IoT Core keeps them: no longer than the account's session expiry
(`iotnotify local --max-session-expiry`), MQTT 3.1.1's too, and an MQTT 5 client asking longer is
told (test_gateway.py has the packets; here real clients against a running stack)."""

import time

import pytest

from tests.helpers import running_stack, user_of


@pytest.fixture(scope="module")
def short_sessions(tmp_path_factory: pytest.TempPathFactory):
    """A stack whose sessions last 2 s after their client left (keys for any client id: a session's
    name is its client id)."""
    with running_stack(tmp_path_factory.mktemp("sessions"), "--any-client-id", "--max-session-expiry", "2") as stack:
        yield stack


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_session_left_longer_than_the_maximum_is_gone(short_sessions, tmp_path, protocol):
    """What was stored for a session is lost once it expired: the subscriber comes back to a new one
    (nothing delivered), whatever --session-expiry asked; within it, everything comes back
    (test_reconnect.py's test_persistent_session_gets_what_was_sent_while_away)."""
    cli, topic = user_of(short_sessions), f"demo/expiry-{protocol}"
    session = f"short-{protocol}-{time.monotonic_ns()}"
    first = cli.subscriber(tmp_path, topic, "--session", session, "--protocol", protocol, "-q", "1")
    first.kill()
    first.communicate()
    assert cli.run("send", "-q", "1", topic, "stored").returncode == 0
    time.sleep(3.5)  # Mosquitto looks at MQTT 5 expiries once a second
    back = cli.run("subscribe", topic, "--session", session, "--protocol", protocol, "-C", "1", "-W", "3", "--quiet")
    assert (back.returncode, back.stdout) == (7, ""), back.stderr
    if protocol == "3.1.1":
        assert "persistent session left over 2 s ago (the account's session expiry): not resumed" in short_sessions.log()


def test_an_mqtt5_session_asking_longer_than_the_maximum_is_told_once(short_sessions, tmp_path):
    cli, topic = user_of(short_sessions), "demo/expiry-said"
    sub = cli.run("subscribe", topic, "--session", f"long-{time.monotonic_ns()}", "--session-expiry", "3600",
                  "-C", "1", "-W", "2")
    assert sub.returncode == 7
    said = [line for line in sub.stderr.splitlines() if "after a disconnection" in line]
    assert len(said) == 1 and said[0].endswith(
        " 2 s after a disconnection, not the 3600 s asked (--session-expiry): messages sent while you are away "
        "longer are not kept"), sub.stderr


@pytest.mark.slow
def test_sessions_and_retained_messages_outlive_a_restart_of_the_stack(tmp_path):
    """AWS IoT Core's restarts lose no persistent session and no retained message: nor do the local
    stack's (Mosquitto saves them in the state folder when it stops)."""
    root = tmp_path / "stack"
    root.mkdir()
    session = f"kept-{time.monotonic_ns()}"
    with running_stack(root, "--any-client-id") as stack:
        cli = user_of(stack)
        first = cli.subscriber(tmp_path, "demo/kept", "--session", session, "-q", "1")
        first.kill()
        first.communicate()
        assert cli.run("send", "-q", "1", "demo/kept", "queued").returncode == 0
        assert cli.run("send", "-r", "demo/retained", "retained").returncode == 0
    with running_stack(root, "--any-client-id") as stack:
        cli = user_of(stack)
        back = cli.run("subscribe", "demo/kept", "--session", session, "-C", "1", "-W", "20", "--quiet")
        assert (back.returncode, back.stdout) == (0, "queued\n"), back.stderr
        retained = cli.run("subscribe", "demo/retained", "--retained-only", "--quiet")
        assert (retained.returncode, retained.stdout) == (0, "retained\n"), retained.stderr
