"""`iotnotify tail`: the live view rendered headless with real traffic from the local stack, the
command in a pseudo-terminal (with --send), and plain lines when stdout is not a terminal."""

import fcntl
import io
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time

import pytest
from rich.console import Console

from iotnotify.cli.live import TailState, render
from iotnotify.keys import endpoint_source
from iotnotify.mqtt import ConnectOptions
from iotnotify.selection import Selection
from iotnotify.subscribe import subscribe
from tests.helpers import IOTNOTIFY, wait_for

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def receive(inbox, state, n, timeout=20):
    """Feed `n` real messages from the broker into the view's state."""
    deadline = time.monotonic() + timeout
    got = 0
    while got < n and time.monotonic() < deadline:
        for message in inbox.drain(0.2):
            state.add(message)
            got += 1
    assert got == n


def screen(state, width=100, height=20) -> str:
    console = Console(record=True, width=width, height=height, file=io.StringIO(), color_system=None)
    console.print(render(state, width, height))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


@pytest.fixture
def topic(request):
    """A short topic of this test's own (long ones are cut in the view)."""
    import zlib

    return f"test/tail/{zlib.crc32(request.node.name.encode()):08x}"


@pytest.fixture
def live_subscription(stack, topic):
    """A subscription in this process, as `tail` makes it, with a TailState fed by its callbacks."""
    source = endpoint_source(stack.endpoint, 5)
    state = TailState(lines=10)
    connection, inbox = subscribe(source, ConnectOptions(ca_file=stack.ca_file), [topic + "/#"], 1,
                                  on_state=state.set_state)
    state.host, state.client_id, state.expires = "127.0.0.1", connection.client_id, source.current.expiration
    state.set_state("connected")
    state.connection = connection  # for the test of the header's client id
    yield state, inbox
    connection.disconnect()


@pytest.mark.parametrize("left, said", [
    (600, "keys expire in 10 min"),
    (30, "keys expire in under a minute (the connection stays up; new keys at the next reconnection)"),
    (-5, "keys expired (the connection stays up; new keys at the next reconnection)")])
def test_the_header_says_what_keys_expiring_means(left, said):
    import datetime as dt

    state = TailState(lines=5)
    state.host, state.client_id, state.expires = "h", "c", dt.datetime.now(dt.UTC) + dt.timedelta(seconds=left + 1)
    assert screen(state, width=200).splitlines()[0].endswith(said)


def test_the_header_shows_the_client_id_the_session_has_now(stack, live_subscription):
    """After a reconnection with new keys the session connects as a client id of theirs
    (Session._renew): the header follows it at the next draw."""
    from iotnotify.cli.live import refresh

    state, _inbox = live_subscription
    source = endpoint_source(stack.endpoint, 5)
    source.get()
    connection = state.connection
    refresh(state, connection, source)
    assert f"client {connection.client_id}" in screen(state).splitlines()[0]
    connection.client_id = "iotnotify-renewed-1234"  # as Session._renew sets it, with the new keys
    refresh(state, connection, source)
    assert "client iotnotify-renewed-1234" in screen(state).splitlines()[0]


def test_live_view_shows_real_messages_in_order_with_json_compacted_and_binary_as_bytes(cli, live_subscription, topic):
    state, inbox = live_subscription
    cli.run("send", f"{topic}/json", '{ "temp": 21.5,\n  "unit": "C" }')
    cli.run("send", f"{topic}/text", "hello world")
    cli.run("send", f"{topic}/bin", "-s", input=b"\xff\x00\x01\x02")
    receive(inbox, state, 3)
    lines = screen(state).splitlines()
    assert lines[0].startswith("● connected  wss://127.0.0.1") and f"client {state.client_id}" in lines[0]
    assert "keys expire" in lines[0]
    assert f"{topic}/json" in lines[1] and lines[1].endswith('{"temp":21.5,"unit":"C"}')
    assert f"{topic}/text" in lines[2] and lines[2].endswith("hello world")
    assert f"{topic}/bin" in lines[3] and lines[3].endswith("<4 bytes> ff 00 01 02")
    assert lines[4].startswith("3 messages · ") and "0 reconnects" in lines[4]
    assert f"top: {topic}/json 1" in lines[4]


def test_long_payloads_are_cut_to_the_width(cli, live_subscription, topic):
    state, inbox = live_subscription
    cli.run("send", f"{topic}/long", "x" * 500)
    receive(inbox, state, 1)
    line = screen(state, width=80).splitlines()[1]
    assert len(line) <= 80 and line.endswith("x…")


def test_the_view_keeps_at_most_n_messages(cli, live_subscription, topic):
    state, inbox = live_subscription
    cli.run("send", "-l", f"{topic}/n", input="".join(f"m{i}\n" for i in range(25)))
    receive(inbox, state, 25)
    assert [row.message.payload for row in state.rows] == [f"m{i}".encode() for i in range(15, 25)]
    shown = [line.split()[-1] for line in screen(state, height=40).splitlines()[1:11]]
    assert shown == [f"m{i}" for i in range(15, 25)]
    assert state.count == 25


def test_exclude_hides_topics_from_the_log_but_not_the_counters(cli, live_subscription, topic):
    state, inbox = live_subscription
    state.selection = Selection(exclude=(f"{topic}/debug/#",))
    cli.run("send", "-l", f"{topic}/debug/x", input="noise\n")
    cli.run("send", "-l", f"{topic}/g", input="signal\n")
    receive(inbox, state, 2)
    assert [row.message.payload for row in state.rows] == [b"signal"]
    assert "2 messages" in screen(state, width=200) and f"excluding {topic}/debug/#: 1 shown" in screen(state, width=200)


def test_grep_filters_the_log_but_not_the_counters(cli, live_subscription, topic):
    state, inbox = live_subscription
    state.selection = Selection(grep=re.compile("alarm"), topics_too=True)
    cli.run("send", "-l", f"{topic}/g", input="ok\nalarm: disk\nfine\n")
    receive(inbox, state, 3)
    assert [row.message.payload for row in state.rows] == [b"alarm: disk"]
    assert "3 messages" in screen(state) and "1 shown" in screen(state)


@pytest.mark.mosquitto
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_header_and_subscription_follow_the_connection_through_a_broker_restart(protocol, tmp_path, fake_endpoint):
    from tests.helpers import broker_behind_front, tutorial_keys

    with broker_behind_front(tmp_path) as (broker, wss, ca_file):
        fake_endpoint.answer(body=tutorial_keys(port=wss))
        state = TailState(lines=5)
        quick = ConnectOptions(protocol, ca_file=ca_file, min_reconnect_delay=0.2, max_reconnect_delay=1)
        connection, inbox = subscribe(endpoint_source(fake_endpoint.url, 5), quick, ["t"], 1,
                                      on_state=state.set_state)
        try:
            assert state.state == "connected"
            broker.stop()
            wait_for(lambda: state.state == "reconnecting", 20, "reconnecting")
            if protocol == "5":  # awscrt reports reconnection attempts for MQTT 5 only
                wait_for(lambda: state.attempt >= 1, 20, "a reconnection attempt")
                assert "● reconnecting (attempt" in screen(state).splitlines()[0]
            else:
                assert screen(state).splitlines()[0].startswith("● reconnecting")
            broker.start()
            wait_for(lambda: state.state == "connected", 30, "connected again")
            assert state.reconnects == 1 and "1 reconnects" in screen(state)
            # and the subscription came back with the connection
            wait_for(lambda: subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-t", "t", "-m", "back"]
                                            ).returncode == 0 and inbox.drain(0.5), 20, "messages after the reconnection")
        finally:
            connection.disconnect()
    assert state.state == "stopped"


def test_memory_of_topics_is_bounded():
    from iotnotify.cli.live import MAX_TOPICS
    from iotnotify.messages import Message

    state = TailState(lines=3)
    for i in range(MAX_TOPICS + 500):
        state.add(Message(f"t/{i}", b"x"))
    assert len(state.topics) == MAX_TOPICS + 1 and state.topics["(other topics)"] == 500
    assert len(state.rows) == 3


def test_the_footer_says_when_messages_came_at_aws_outbound_rate():
    state = TailState(lines=3)
    assert "more may have been discarded" not in screen(state, width=200)
    state.busy = True  # subscribe's RateWatch heard 90 in a second (tests/test_inbox.py)
    assert "at AWS's 100 messages/s: more may have been discarded" in screen(state, width=200)


def test_tail_into_a_pipe_prints_plain_lines_and_saves_everything(cli, tmp_path, topic):
    saved = tmp_path / "traffic.jsonl"
    proc = subprocess.Popen([*IOTNOTIFY, "tail", f"{topic}/#", "--grep", "keep", "--save", str(saved)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli.env)
    wait_for(lambda: cli.run("send", f"{topic}/sync", "keep sync").returncode == 0 and saved.exists()
             and saved.stat().st_size > 0, 30, "tail subscribed")
    cli.run("send", "-l", f"{topic}/x", input="keep one\ndrop two\nkeep three\n")
    wait_for(lambda: "keep three" in saved.read_text(), 20, "saved")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    lines = [line for line in out.decode().splitlines() if "sync" not in line]
    assert lines == [f"{topic}/x keep one", f"{topic}/x keep three"]
    records = [json.loads(line) for line in saved.read_text().splitlines() if "sync" not in line]
    assert [r["payload"] for r in records] == ["keep one", "drop two", "keep three"]
    assert {"topic", "payload", "qos", "retain", "time"} <= set(records[0])
    assert re.fullmatch(r"tail: \d+ messages \(\d+ shown\), .* 0 reconnects\n", err.decode())


def read_until(fd, needle: str, timeout: float = 20) -> str:
    """Read a pseudo-terminal until `needle` appears in its text (ANSI codes removed)."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data += os.read(fd, 65536)
            except OSError:
                break
            if needle in ANSI.sub("", data.decode("utf-8", "replace")):
                return ANSI.sub("", data.decode("utf-8", "replace"))
    raise AssertionError(f"{needle!r} not seen; got {ANSI.sub('', data.decode('utf-8', 'replace'))[-2000:]!r}")


def test_tail_in_a_terminal_with_send(cli, tmp_path, topic):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen([*IOTNOTIFY, "tail", f"{topic}/#", "--send", f"{topic}/chat"], stdin=slave,
                            stdout=slave, stderr=slave, env={**cli.env, "TERM": "xterm-256color"},
                            start_new_session=True)
    os.close(slave)
    try:
        read_until(master, "● connected")
        cli.run("send", f"{topic}/in", '{"a": 1}')
        read_until(master, '{"a":1}')
        listener = cli.subscriber(tmp_path, f"{topic}/chat", "-C", "1", "-W", "20")
        os.write(master, "héllo from tail\r".encode())
        out, _ = listener.communicate(timeout=30)
        assert out == "héllo from tail\n".encode()
        text = read_until(master, "→ ")
        assert f"→ {topic}/chat" in text
        os.kill(proc.pid, signal.SIGINT)
        text = read_until(master, "reconnects\n")
        assert re.search(r"tail: \d+ messages, .* 0 reconnects", text)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def test_tail_without_filters_follows_the_configured_topic(cli, topic):
    env = {**cli.env, "IOTNOTIFY_TOPIC": f"{topic}/default"}
    proc = subprocess.Popen([*IOTNOTIFY, "tail"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    os.set_blocking(proc.stdout.fileno(), False)
    received = b""

    def arrived() -> bool:
        nonlocal received
        cli.run("send", f"{topic}/default", "on the default topic")
        time.sleep(0.2)
        received += proc.stdout.read() or b""
        return b"on the default topic" in received

    wait_for(arrived, 30, "a message on the configured topic")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert received.splitlines()[0] == f"{topic}/default on the default topic".encode()


def test_bad_grep_pattern_is_a_usage_error(cli):
    result = cli.run("tail", "t", "--grep", "(unclosed")
    assert result.returncode == 2 and "--grep '(unclosed' is not a valid pattern" in result.stderr
