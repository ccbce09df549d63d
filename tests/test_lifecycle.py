"""AWS IoT Core's lifecycle events from the local stack, received by a real client whose keys allow
them (`iotnotify local --lifecycle-events`, the endpoint's IOTNOTIFY_LIFECYCLE_EVENTS) and refused
to keys that do not (the default). test_gateway.py has each event's fields and reasons."""

import json
import re
import signal
import time

import pytest

from tests.helpers import Lines, run_in_process, running_stack, user_env, user_of, wait_for


@pytest.fixture(scope="module")
def events_stack(tmp_path_factory: pytest.TempPathFactory):
    with running_stack(tmp_path_factory.mktemp("events"), "--lifecycle-events", "--any-client-id") as stack:
        yield stack


def test_a_watcher_sees_another_client_connect_subscribe_and_go(events_stack, tmp_path):
    cli = user_of(events_stack)
    client = f"watched-{time.monotonic_ns()}"
    watcher = cli.subscriber(tmp_path, f"$aws/events/presence/+/{client}", f"$aws/events/subscriptions/+/{client}",
                             "--json", "-C", "3", "-W", "30")
    done = cli.run("subscribe", "demo/x", "--client-id", client, "-W", "1", "--quiet")
    assert done.returncode == 7, done.stderr  # nothing arrived within the second: the point is its events
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    events = [json.loads(json.loads(line)["payload"]) for line in out.splitlines()]
    assert [e["eventType"] for e in events] == ["connected", "subscribed", "disconnected"]
    assert {e["clientId"] for e in events} == {client}
    assert events[1]["topics"] == ["demo/x"]
    assert events[2]["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT" and events[2]["clientInitiatedDisconnect"]
    assert events[0]["versionNumber"] == events[2]["versionNumber"]
    assert events[0]["sessionIdentifier"] == events[2]["sessionIdentifier"]


def test_keys_without_the_grant_may_not_subscribe_to_lifecycle_events(cli):
    """The default stack (and endpoint) grants no $aws/events/: the client says so before asking."""
    result = cli.run("subscribe", "$aws/events/presence/+/+", "-W", "2")
    assert result.returncode == 10, result.stderr
    assert "may not subscribe to '$aws/events/presence/+/+'" in result.stderr


# --- `presence` (issue 31, item 3): connects, clean exits and crashes, and wills ----------------------

def presence_lines(cli, tmp_path, *args):
    """Start `presence ARGS --json` once it is subscribed; its JSON lines as they come, in a list."""
    return Lines(cli.ready(tmp_path, "presence", "--json", *args), json.loads)


def test_presence_tells_a_clean_exit_from_a_crash(events_stack, tmp_path):
    cli = user_of(events_stack)
    clean, crashing = f"clean-{time.monotonic_ns()}", f"crash-{time.monotonic_ns()}"
    printed = presence_lines(cli, tmp_path)
    lines = printed.lines
    assert cli.run("subscribe", "demo/x", "--client-id", clean, "-W", "1", "--quiet").returncode == 7
    victim = cli.subscriber(tmp_path, "demo/x", "--client-id", crashing, "--will-topic", f"demo/status/{crashing}",
                            "--will-message", "crashed", "--will-retain")
    victim.kill()  # no DISCONNECT: the broker finds the connection gone
    victim.communicate()
    wait_for(lambda: sum(line.get("client_id") in (clean, crashing) for line in lines) >= 4, 30, "four events")
    assert printed.stop()[0] == 0
    seen = [(line["event"], line["client_id"], line.get("clean")) for line in lines
            if line.get("client_id") in (clean, crashing)]
    assert seen[:2] == [("connected", clean, None), ("disconnected", clean, True)]
    assert seen[2:] == [("connected", crashing, None), ("disconnected", crashing, False)]
    lost = next(line for line in lines if line.get("client_id") == crashing and line["event"] == "disconnected")
    assert lost["reason"] == "CONNECTION_LOST"

    # the will it left, retained on its status topic: --once shows it, and exits
    def board() -> dict:
        done = cli.run("presence", f"demo/status/{crashing}", "--no-events", "--once", "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    wait_for(lambda: board()["statuses"], 30, "the will retained")
    (status,) = board()["statuses"]
    assert (status["topic"], status["payload"], status["retained"]) == (f"demo/status/{crashing}", "crashed", True)
    cli.run("send", f"demo/status/{crashing}", "", "--retain")  # (the retained will cleared)


def test_presence_lines_say_left_and_lost(events_stack, tmp_path):
    cli = user_of(events_stack)
    client = f"plain-{time.monotonic_ns()}"
    printed = Lines(cli.ready(tmp_path, "presence"))
    lines = printed.lines
    assert cli.run("subscribe", "demo/x", "--client-id", client, "-W", "1", "--quiet").returncode == 7
    wait_for(lambda: any(f"left {client}" in line for line in lines), 30, "the clean exit")
    assert printed.stop()[0] == 0
    assert [line.split(" ", 1)[1] for line in lines if client in line] == [f"connected {client}\n",
                                                                          f"left {client}\n"]


def test_presence_without_the_grant_says_how_to_get_it(cli):
    done = cli.run("presence")
    assert done.returncode == 10 and "IOTNOTIFY_LIFECYCLE_EVENTS" in done.stderr and "--no-events" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    with_status = cli.run("presence", "test/status/#", "--once", "--json")
    assert with_status.returncode == 0, with_status.stderr
    assert "lifecycle events" in with_status.stderr and json.loads(with_status.stdout) == {"clients": [],
                                                                                           "statuses": []}


@pytest.mark.parametrize("args, said", [
    (["presence", "--no-events"], "leaves nothing to watch"),
    (["presence", "-W", "3"], "-W goes with --once"),
])
def test_what_presence_refuses(tmp_path, args, said):
    done = run_in_process(args, {**user_env(tmp_path), "IOTNOTIFY_ENDPOINT": "http://127.0.0.1:9/iot/keys"})
    assert done.returncode == 2 and said in done.stderr


def test_a_lifecycle_event_is_read_from_its_topic_and_json():
    from iotnotify.messages import Message
    from iotnotify.presence import Board, change_of

    lost = change_of(Message("$aws/events/presence/disconnected/web1", json.dumps(
        {"clientId": "web1", "timestamp": 1_800_000_000_123, "eventType": "disconnected",
         "clientInitiatedDisconnect": False, "disconnectReason": "MQTT_KEEP_ALIVE_TIMEOUT"}).encode()))
    assert (lost.kind, lost.name, lost.time, lost.reason, lost.crashed) == \
        ("disconnected", "web1", 1_800_000_000.123, "MQTT_KEEP_ALIVE_TIMEOUT", True)
    garbled = change_of(Message("$aws/events/presence/disconnected/web2", b"\xff{", time=5.0))
    assert (garbled.name, garbled.time, garbled.clean, garbled.crashed) == ("web2", 5.0, None, True)
    status = change_of(Message("status/web1", b"down", retain=True))
    assert (status.kind, status.retained, status.record()["payload"]) == ("status", True, "down")
    board = Board(limit=2)
    for change in (lost, garbled, status, lost):
        board.take(change)
    assert [c.name for c in board.entries.values()] == ["status/web1", "web1"]  # bounded, newest last


@pytest.mark.parametrize("payload", [b'{"timestamp": 1e400}', b'{"timestamp": ' + b"9" * 400 + b"}",
                                     b'{"timestamp": 1e17}', b'{"timestamp": -5}', b'{"timestamp": NaN}',
                                     b'{"timestamp": true}', b"[" * 100_000])
def test_a_lifecycle_event_with_a_time_no_clock_has_takes_the_time_it_came(payload):
    from iotnotify.messages import Message
    from iotnotify.presence import change_of

    change = change_of(Message("$aws/events/presence/connected/web1", payload, time=7.0))
    assert (change.kind, change.name, change.time) == ("connected", "web1", 7.0)
    assert change.record()["time"] == "1970-01-01T00:00:07.000Z"


def test_a_disconnect_reason_not_shaped_as_aws_s_is_not_shown_and_names_are_cut():
    from iotnotify.cli.presence import _line
    from iotnotify.messages import Message
    from iotnotify.presence import change_of

    lost = change_of(Message("$aws/events/presence/disconnected/web\x1b[2J", json.dumps(
        {"disconnectReason": "\x1b[2J", "clientInitiatedDisconnect": False}).encode(), time=7.0))
    assert lost.reason is None and "\x1b" not in _line(lost) and _line(lost).endswith("(no reason given)")
    status = change_of(Message("status/" + "x" * 5000, b"y" * 200_000))
    assert len(status.name) == 512 and len(status.payload) == 1024


def test_presence_in_a_terminal_is_a_live_table(events_stack, tmp_path):
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import termios

    from tests.helpers import IOTNOTIFY
    from tests.test_tail import read_until

    cli = user_of(events_stack)
    client = f"table-{time.monotonic_ns()}"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    ready = tmp_path / "ready"
    proc = subprocess.Popen([*IOTNOTIFY, "presence", "--ready-file", str(ready)], stdin=slave, stdout=slave,
                            stderr=slave, env={**cli.env, "TERM": "xterm-256color"}, start_new_session=True)
    os.close(slave)
    try:
        wait_for(ready.exists, 30, "presence subscribed")
        victim = cli.subscriber(tmp_path, "demo/x", "--client-id", client)
        assert re.search(rf"{client} +connected", read_until(master, client))
        victim.kill()
        victim.communicate()
        assert re.search(rf"{client} +lost \(CONNECTION_LOST\)", read_until(master, "(CONNECTION_LOST)"))
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def test_a_topic_under_the_presence_prefix_that_is_no_presence_event_is_a_status():
    from iotnotify.messages import Message
    from iotnotify.presence import change_of

    for topic in ("$aws/events/presence/subscribed/web1", "$aws/events/presence/connected",
                  "$aws/events/presence//x"):
        change = change_of(Message(topic, b"{}"))
        assert (change.kind, change.name) == ("status", topic)
