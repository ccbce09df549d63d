"""Fault injection: subscribers through broker restarts (state changes on stderr, resubscribing,
giving up when told to) and senders through a stopped or vanished broker (nothing accepted is lost
silently). Each test has a broker of its own to stop and start."""

import contextlib
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import IOTNOTIFY, acknowledged, broker_behind_front, running_stack, tutorial_keys, user_of, wait_for

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def own_broker(tmp_path, fake_endpoint):
    """A broker of this test's own, and the flags that point `iotnotify` at it."""
    with broker_behind_front(tmp_path) as (broker, wss, ca_file):
        fake_endpoint.answer(body=tutorial_keys(port=wss))
        yield broker, ["--endpoint", fake_endpoint.url, "--ca-file", ca_file]


def test_subscribe_reports_reconnection_on_stderr_and_receives_after_it(cli, own_broker, tmp_path):
    broker, flags = own_broker
    sub = cli.subscriber(tmp_path, *flags, "t", "-C", "1", "-W", "60", "--reconnect-delay", "0.2,1")
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
@pytest.mark.slow
def test_subscribe_gives_up_when_told_to(cli, own_broker, tmp_path, flag, message):
    broker, flags = own_broker
    sub = cli.subscriber(tmp_path, *flags, "t", *flag, "--reconnect-delay", "0.2,0.5")
    broker.stop()
    _out, err = sub.communicate(timeout=90)
    assert sub.returncode == 5
    assert err.decode().splitlines()[-1].startswith("iotnotify: error: ") and message in err.decode()


def start_sender(cli, broker, flags: list[str], failed, first: bytes) -> subprocess.Popen[bytes]:
    """`send -l --timeout 2 --failed FAILED`, with `first` sent and acknowledged by the broker by
    the time it returns."""
    sender = subprocess.Popen([*IOTNOTIFY, *flags, "send", "-l", "t", "--timeout", "2", "--failed", str(failed)],
                              stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=cli.env)
    sender.stdin.write(first)
    sender.stdin.flush()
    wait_for(lambda: acknowledged(broker) >= first.count(b"\n"), 30, "the first lines acknowledged")
    return sender


@pytest.mark.slow
def test_send_gives_up_after_timeout_with_the_exact_count_and_the_failed_file(cli, own_broker, tmp_path):
    broker, flags = own_broker
    failed = tmp_path / "failed.txt"
    sender = start_sender(cli, broker, flags, failed, b"l1\nl2\nl3\nl4\nl5\n")
    broker.stop()
    sender.stdin.write(b"l6\nl7\nl8\n")
    err = sender.communicate(timeout=30)[1].decode()
    assert sender.returncode == 6
    assert err == (f"iotnotify: error: 3 of 8 messages were not delivered (3 not acknowledged by the broker); "
                   f"saved to {failed}\n")
    assert failed.read_bytes() == b"l6\nl7\nl8\n"
    assert oct(failed.stat().st_mode & 0o777) == "0o600"


@pytest.mark.slow
def test_send_of_10000_lines_through_a_stopped_and_continued_broker_loses_none(cli, own_broker, tmp_path):
    broker, flags = own_broker
    ready = tmp_path / "ready"
    sub = subprocess.Popen([*IOTNOTIFY, *flags, "subscribe", "t", "-C", "10000", "-W", "120", "--quiet",
                            "--ready-file", str(ready)], stdout=subprocess.PIPE, env=cli.env)
    wait_for(ready.exists, 30, "subscriber ready")
    sender = subprocess.Popen([*IOTNOTIFY, *flags, "send", "-l", "t"], stdin=subprocess.PIPE, env=cli.env)
    sender.stdin.write(b"".join(b"%d\n" % i for i in range(5000)))
    sender.stdin.flush()
    broker.process.send_signal(signal.SIGSTOP)
    try:
        sender.stdin.write(b"".join(b"%d\n" % i for i in range(5000, 10000)))
        sender.stdin.flush()
        time.sleep(2)
    finally:
        broker.process.send_signal(signal.SIGCONT)
    sender.communicate(timeout=120)
    assert sender.returncode == 0
    out, _ = sub.communicate(timeout=120)
    received = out.decode().split()
    assert sub.returncode == 0
    assert set(received) == {str(i) for i in range(10000)}
    duplicates = len(received) - len(set(received))
    print(f"duplicates (QoS 1 redelivery): {duplicates}")  # noqa: T201 - for `pytest -s`, not asserted


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_persistent_session_gets_what_was_sent_while_away(any_id_cli, tmp_path, topic, protocol):
    cli = any_id_cli  # the session's name is the client id: keys that allow any
    session = f"s-{protocol}-{time.monotonic_ns()}"
    first = cli.subscriber(tmp_path, topic, "--session", session, "--protocol", protocol)
    first.kill()  # gone without a goodbye; the broker keeps the session
    first.communicate()
    assert cli.run("send", "-l", topic, input="while\nyou\nwere away\n").returncode == 0
    back = cli.run("subscribe", topic, "--session", session, "--protocol", protocol, "-C", "3", "-W", "20",
                   "--quiet")
    assert back.returncode == 0, back.stderr
    assert back.stdout == "while\nyou\nwere away\n"


@pytest.mark.slow
def test_without_a_session_what_was_sent_while_away_is_not_delivered(any_id_cli, tmp_path, topic):
    cli = any_id_cli
    first = cli.subscriber(tmp_path, topic, "--client-id", f"plain-{time.monotonic_ns()}")
    first.kill()
    first.communicate()
    cli.run("send", topic, "missed")
    back = cli.run("subscribe", topic, "-C", "1", "-W", "2", "--quiet")
    assert back.returncode == 7 and back.stdout == ""


@pytest.mark.slow
def test_send_stops_reading_at_the_window_when_the_broker_stops_acknowledging(cli, own_broker, tmp_path):
    """A frozen broker: `send` holds WINDOW messages, stops reading, and after --timeout s without an
    acknowledgement says where its input stopped; --failed keeps exactly the messages it had read."""
    from iotnotify.send import WINDOW

    broker, flags = own_broker
    failed = tmp_path / "failed.txt"
    sender = start_sender(cli, broker, flags, failed, b"first\n")
    broker.process.send_signal(signal.SIGSTOP)
    try:
        try:
            sender.stdin.write(b"".join(b"%d\n" % i for i in range(3 * WINDOW)))
        except BrokenPipeError:
            pass
        err = sender.communicate(timeout=30)[1].decode()
        assert sender.returncode == 6
    finally:
        broker.process.send_signal(signal.SIGCONT)
    assert err == (f"iotnotify: error: {WINDOW} of {WINDOW + 1} messages were not delivered ({WINDOW} not "
                   f"acknowledged by the broker); input not read past message {WINDOW + 1}; saved to {failed}\n")
    assert failed.read_bytes() == b"".join(b"%d\n" % i for i in range(WINDOW))


@pytest.mark.slow
def test_a_connection_closed_for_its_age_comes_back_and_its_session_loses_nothing(tmp_path):
    """AWS closes a WebSocket connection after 24 hours; `iotnotify local --max-connection-duration 3`
    after 3 s. A subscriber with a persistent session at QoS 1 connects again each time, and gets
    every message sent meanwhile (at least once). (MQTT 3.1.1's client takes 3 closes within 10 s of
    connecting for a takeover and stops: docs/local-stack.md says to give it more than 10 s.)"""
    with running_stack(tmp_path, "--any-client-id", "--max-connection-duration", "3") as stack:
        cli, topic = user_of(stack), "demo/duration"
        sub = cli.subscriber(tmp_path, topic, "--session", "aged", "-q", "1", "-C", "16", "-W", "60")
        tail = cli.start("tail", topic)  # stdout not a terminal: plain lines, and the reconnections said
        for i in range(16):  # about 10 s: three closures or more
            assert cli.run("send", topic, str(i)).returncode == 0
            time.sleep(0.5)
        out, err = sub.communicate(timeout=90)
        tail.send_signal(signal.SIGINT)
        _, tail_err = tail.communicate(timeout=30)
        closed = stack.log().count("connected longer than 3 s")
    assert sub.returncode == 0, err
    assert sorted({int(line) for line in out.split()}) == list(range(16))
    assert b"connection lost, reconnecting" in err and b"reconnected" in err
    assert closed >= 2
    assert b"iotnotify: reconnected" in tail_err and not re.search(rb", 0 reconnects\n$", tail_err), tail_err


def test_two_connects_with_one_client_id_in_the_same_second_the_later_waits_its_turn(any_id_cli, any_id_stack, tmp_path,
                                                                                    topic):
    """AWS takes one CONNECT a second per client id: of two `subscribe --client-id X` started together,
    one is refused (CONNACK 0x9F locally; AWS does not say how it answers), tries again after a second
    as a reconnection would, and takes the id over, as AWS IoT Core lets the newer connection do."""
    client_id = f"twice-{time.monotonic_ns()}"
    log_before = len(any_id_stack.log())
    readies = [tmp_path / f"ready-{n}" for n in (1, 2)]
    subs = [any_id_cli.start("subscribe", topic, "--client-id", client_id, "--ready-file", str(ready), "--debug")
            for ready in readies]
    try:
        wait_for(lambda: all(ready.exists() for ready in readies), 30, "both subscribed, one after the other")
        wait_for(lambda: any(sub.poll() is not None for sub in subs), 20, "the older one taken over")
        log = any_id_stack.log()[log_before:]
    finally:
        errs = []
        for sub in subs:
            sub.kill()
            errs.append(sub.communicate()[1].decode())
    assert log.count("CONNECT within 1 s of the last one with this client id") == 1, log
    assert sum("connection rate exceeded: trying again" in err for err in errs) == 1, errs
    assert sum("taken over" in err for err in errs) == 1, errs


def test_a_network_cut_keeps_the_keys_and_the_subscriber_comes_back_after_it(cli, tmp_path, fake_endpoint):
    """The network gone for 2.5 s under a subscriber (bench/delay.py's relay ends every connection and
    each new one meanwhile): its reconnection attempts fail with the socket closed, which is the
    network, not a refusal; the keys in hand stay (the endpoint is asked once), and the subscriber
    gets what is sent once the network is back."""
    sys.path.insert(0, str(BENCH))
    try:
        from delay import Relay
    finally:
        sys.path.remove(str(BENCH))
    with broker_behind_front(tmp_path) as (broker, wss, ca_file), Relay(wss, 0) as relay:
        fake_endpoint.answer(body=tutorial_keys(port=relay.port))
        sub = cli.subscriber(tmp_path, "--endpoint", fake_endpoint.url, "--ca-file", ca_file, "--debug", "t",
                             "-C", "1", "-W", "60", "--reconnect-delay", "0.5,0.5")
        relay.cut(2.5, "reset")
        wait_for(lambda: subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-t", "t", "-m", "after", "-q", "1"]
                                        ).returncode == 0 and sub.poll() is not None, 60, "the message after the cut")
        out, err = sub.communicate()
    assert sub.returncode == 0 and out == b"after\n", err
    assert b"connection failed: AWS_IO_SOCKET_CLOSED" in err  # an attempt was made while the network was away
    assert b"keys: forgotten" not in err and fake_endpoint.requests == 1, err


@contextlib.contextmanager
def stack_behind_relay(tmp_path, one_way=0.0, **config):
    """An in-process local stack (AWS's rules on, any client id) whose keys send clients through a
    relay (bench/delay.py, `one_way` seconds each way) to its wss front, which the test may cut; the
    CLI for it, and the relay."""
    from iotnotify.local.stack import LocalStack, StackConfig
    from tests.helpers import Cli, free_port, user_env

    sys.path.insert(0, str(BENCH))
    try:
        from delay import Relay
    finally:
        sys.path.remove(str(BENCH))
    stack = LocalStack(StackConfig(tmp_path / "state", free_port(), free_port(), free_port(), topics=("t",),
                                   any_client_id=True, **config))
    stack.start()
    try:
        with Relay(stack.config.wss_port, one_way) as relay:
            stack.issuer.port = relay.port  # the keys say: connect to the relay
            yield stack, Cli({**user_env(tmp_path), "IOTNOTIFY_ENDPOINT": stack.endpoint_url,
                              "IOTNOTIFY_CA_FILE": str(stack.tls.ca_file)}), relay
    finally:
        stack.stop()


def debug_times(err: bytes, text: bytes) -> list[float]:
    """The times (`--debug`'s +S s) of the trace lines that contain `text`."""
    return [float(m.group(1)) for line in err.splitlines() if text in line
            and (m := re.search(rb"debug: \+([0-9.]+) s", line))]


def test_under_aws_rules_a_cut_network_is_tried_each_second_and_found_within_one(tmp_path):
    """AWS takes one CONNECT a second per client id; awscrt's client would wait 1, 2, 4 s... (a 4.5-s
    cut found 2.5 s late). The session tries at once, then each second (retry.py): 5 attempts in
    the cut, and the subscriber (a persistent session) gets what was sent meanwhile once it is back."""
    with stack_behind_relay(tmp_path) as (stack, cli, relay):
        ready = tmp_path / "ready"
        sub = cli.start("--debug", "subscribe", "t", "--session", "cut", "-q", "1", "-C", "1", "-W", "60",
                        "--ready-file", str(ready))
        wait_for(ready.exists, 30, "subscribed")
        time.sleep(1.2)  # the last CONNECT over a second ago: the first attempt may come at once
        back = relay.cut(4.5, "reset")
        subprocess.run(["mosquitto_pub", "-p", str(stack.config.mqtt_port), "-q", "1", "-t", "t", "-m", "meanwhile"],
                       check=True)
        out, err = sub.communicate(timeout=60)
        returned = time.monotonic()
    assert sub.returncode == 0 and out == b"meanwhile\n", err
    lost, attempts = debug_times(err, b"connection lost:")[0], debug_times(err, b"reconnecting to")
    assert attempts[0] - lost < 0.5, err  # at once, not a second later
    assert len([t for t in attempts if t < lost + 4.4]) >= 5, err  # each second (awscrt's own: 2 in the cut)
    assert returned - back < 2.5, err  # within a second of the network's return (and the handshake)


def test_a_connection_the_broker_ends_for_its_age_is_made_again_at_once(tmp_path):
    """AWS ends a WebSocket connection after 24 hours; a CONNECT long after the last one is allowed at
    once (the stack ends it after 2 s here): the next attempt comes without awscrt's second."""
    with stack_behind_relay(tmp_path, max_connection_duration=2.0) as (stack, cli, _relay):
        ready = tmp_path / "ready"
        sub = cli.start("--debug", "subscribe", "t", "--session", "aged", "-q", "1", "-C", "3", "-W", "60",
                        "--ready-file", str(ready))
        wait_for(ready.exists, 30, "subscribed")
        for number in range(3):
            time.sleep(1.5)  # the connection ends at its first message after 2 s
            subprocess.run(["mosquitto_pub", "-p", str(stack.config.mqtt_port), "-q", "1", "-t", "t", "-m",
                            str(number)], check=True)
        _out, err = sub.communicate(timeout=60)
    assert sub.returncode == 0, err
    ended = debug_times(err, b"connection lost:")  # the stack hangs up, as AWS does, without a DISCONNECT
    attempts = debug_times(err, b"reconnecting to")
    assert ended and attempts, err
    assert attempts[0] - ended[0] < 0.5, err



def subscribed_through_a_cut(tmp_path, one_way: float) -> tuple[subprocess.Popen[bytes], bytes, bytes]:
    """A subscriber (-C 1) behind a relay of `one_way` seconds each way, whose network resets for
    0.5 s just after its first SUBSCRIBE went (which never arrives); a message once it is
    subscribed; its exit, stdout and whole trace."""
    with stack_behind_relay(tmp_path, one_way=one_way) as (stack, cli, relay):
        ready = tmp_path / "ready"
        sub = cli.start("--debug", "subscribe", "t", "-q", "1", "-C", "1", "-W", "60", "--ready-file", str(ready))
        seen = []
        for line in sub.stderr:  # type: ignore[union-attr]
            seen.append(line)
            if b"SUBSCRIBE 't'" in line:
                time.sleep(0.05)  # sent (awscrt's thread), not yet answered (the relay's one way: 0.2 s and more)
                relay.cut(0.5, "reset")
                break
        wait_for(lambda: ready.exists() or sub.poll() is not None, 30, "subscribed on the new connection")
        subprocess.run(["mosquitto_pub", "-p", str(stack.config.mqtt_port), "-q", "1", "-t", "t", "-m", "after"],
                       check=True)
        out, err = sub.communicate(timeout=60)
    return sub, out, b"".join(seen) + err


def test_a_subscription_in_flight_when_the_connection_is_lost_is_asked_for_again(tmp_path):
    """The connection lost between CONNACK and SUBACK (0.2 s each way): the session's new client is
    asked for the subscription the old one took with it, and the subscriber goes on (it exited:
    'did not acknowledge the subscription')."""
    sub, out, err = subscribed_through_a_cut(tmp_path, 0.2)
    assert sub.returncode == 0 and out == b"after\n", err
    assert b"asking the new connection" in err, err
    assert len(debug_times(err, b"SUBACK 't'")) == 1, err


def test_a_tls_probe_that_fails_after_the_connection_was_made_does_not_end_the_command(tmp_path):
    """A connection slower than 1.5 s is probed (a TLS handshake of our own, to name a certificate
    problem sooner than awscrt does): the client's CONNACK does not wait for the probe (its
    SUBSCRIBE goes while the probe's handshake is under way), and the network reset then ends the
    probe's handshake, which is no reason to give up a connection that was made (it said 'TLS
    failure ... UNEXPECTED_EOF_WHILE_READING' and exited 5)."""
    sub, out, err = subscribed_through_a_cut(tmp_path, 0.3)
    assert b"probing TLS" in err, err  # the connection took longer than the probe's 1.5 s
    assert b"the connection was made meanwhile" in err, err  # and the cut ended the probe's handshake
    assert sub.returncode == 0 and out == b"after\n", err


def test_messages_the_broker_drops_on_a_live_connection_are_published_again_on_a_new_one(tmp_path):
    """A 3-s network stall under `send -l` at 50 lines a second: the paced stream reaches the broker
    in one burst, over AWS's 100 publishes a second, and the broker drops the excess without a PUBACK
    (as AWS IoT Core does) while the connection stays up. MQTT lets a client publish them again only
    on a new connection: ACK_DEADLINE (10 s) after, the session makes one, and every line arrives
    (the stream used to end with 'not acknowledged by the broker', exit 6)."""
    lines = 300
    with stack_behind_relay(tmp_path) as (stack, cli, relay):
        sub = subprocess.Popen(["mosquitto_sub", "-p", str(stack.config.mqtt_port), "-q", "1", "-t", "t",
                                "-C", str(lines)], stdout=subprocess.PIPE)
        time.sleep(0.5)
        send = cli.start("--debug", "send", "-l", "t", stdin=subprocess.PIPE)
        for number in range(lines):
            if number == 100:
                relay.cut(3, "stall")
            send.stdin.write(b"%d\n" % number)  # type: ignore[union-attr]
            send.stdin.flush()  # type: ignore[union-attr]
            time.sleep(0.02)
        send.stdin.close()  # type: ignore[union-attr]
        send.stdin = None  # closed: communicate() only reads
        _out, err = send.communicate(timeout=90)
        try:
            received, _ = sub.communicate(timeout=30)
        finally:
            sub.kill()
    assert send.returncode == 0, err[-3000:]
    assert b"the broker dropped them" in err, err[-3000:]  # the stall's burst was over the rate
    assert {int(line) for line in received.split()} == set(range(lines))


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
@pytest.mark.parametrize("mode", ["stall", "reset"])
def test_a_long_running_subscription_waits_out_an_outage_longer_than_its_timeout(tmp_path, mode, protocol):
    """An outage between SUBSCRIBE and SUBACK longer than the wait for a SUBACK (1 s here, 20 s in
    the commands): a reset is a lost connection, during which the time does not count (MQTT 3.1.1's
    client cancels the SUBSCRIBE: it is asked again once connected); a stall leaves the connection
    up without an answer, so it is made anew. Either way the subscription is granted once the
    network is back (subscribe, tail and on exited 6 after 20 s, saying nothing after 'did not
    acknowledge the subscription:')."""
    from iotnotify.keys import endpoint_source
    from iotnotify.mqtt import ConnectOptions, open_session

    with stack_behind_relay(tmp_path, one_way=0.2) as (stack, _cli, relay):
        options = ConnectOptions(protocol, ca_file=str(stack.tls.ca_file), long_running=True)
        with open_session(endpoint_source(stack.endpoint_url, 5), options) as session:
            cut = threading.Timer(0.1, relay.cut, args=(3, mode))  # the SUBSCRIBE on its way (0.2 s)
            cut.start()
            started = time.monotonic()
            assert session.subscribe(["t"], 1, timeout=1) == [1]
            assert time.monotonic() - started > 3  # answered after the outage, not before it
            cut.join()


def test_a_subscription_of_a_one_shot_command_says_how_long_it_waited(tmp_path):
    """Not long-running: no SUBACK within the time is an error that says so (it said nothing after
    'did not acknowledge the subscription:', awscrt's TimeoutError having no text)."""
    from iotnotify.errors import DeliveryError
    from iotnotify.keys import endpoint_source
    from iotnotify.mqtt import ConnectOptions, open_session

    with stack_behind_relay(tmp_path, one_way=0.2) as (stack, _cli, relay):
        options = ConnectOptions(ca_file=str(stack.tls.ca_file))
        with open_session(endpoint_source(stack.endpoint_url, 5), options) as session:
            relay.cut(3, "stall")
            with pytest.raises(DeliveryError, match=r"did not acknowledge the subscription within 1 s$"):
                session.subscribe(["t"], 1, timeout=1)


@pytest.mark.parametrize("via", ["mqtt", "https"])
def test_a_network_reset_at_the_first_connection_is_not_called_a_refusal_of_the_keys(tmp_path, via):
    """The network resetting every connection: the error names the closed connection and both of
    its causes, not 'refused the MQTT WebSocket connection: keys expired or not accepted' (over
    HTTPS too, where no WebSocket is involved); exit 5 as before."""
    with stack_behind_relay(tmp_path) as (_stack, cli, relay):
        relay.cut(30, "reset")
        result = cli.run("send", "--via", via, "t", "x", timeout=60)
    assert result.returncode == 5, result.stderr
    assert "closed the connection before it was made (AWS_IO_SOCKET_CLOSED): the network went" in result.stderr
    assert "WebSocket" not in result.stderr


def test_a_connection_made_anew_while_it_is_up_says_goodbye_so_its_will_is_not_published(tmp_path):
    """The stalled SUBSCRIBE of the test above, with a will: the session replaces a connection that
    is up (no SUBACK within the wait), and stops the old client with a DISCONNECT, as the client goes
    on under the same id; without it the broker published the will, a death that did not happen."""
    from iotnotify.keys import endpoint_source
    from iotnotify.mqtt import ConnectOptions, open_session
    from iotnotify.mqtt.options import Will

    with stack_behind_relay(tmp_path, one_way=0.2) as (stack, _cli, relay):
        watcher = subprocess.Popen(["mosquitto_sub", "-p", str(stack.config.mqtt_port), "-t", "t"],
                                   stdout=subprocess.PIPE)
        time.sleep(0.5)
        options = ConnectOptions(ca_file=str(stack.tls.ca_file), long_running=True, will=Will("t", b"gone"))
        with open_session(endpoint_source(stack.endpoint_url, 5), options) as session:
            threading.Timer(0.1, relay.cut, args=(3, "stall")).start()
            assert session.subscribe(["t"], 1, timeout=1) == [1]
            time.sleep(2)  # a will goes at once (no delay asked)
        watcher.terminate()
        seen, _ = watcher.communicate(timeout=30)
    assert b"gone" not in seen
