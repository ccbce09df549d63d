"""`send` and `subscribe` against the real local stack, as users and shell scripts use them."""

import contextlib
import json
import os
import select
import shlex
import signal
import subprocess
import time

import pytest

from tests.helpers import IOTNOTIFY, Cli, wait_for, waiting


def finish(proc, timeout=30):
    """Wait for a background command; return (code, stdout bytes, stderr text)."""
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err.decode()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
@pytest.mark.parametrize("qos", ["0", "1"])
def test_send_and_receive(cli, tmp_path, topic, protocol, qos):
    sub = cli.subscriber(tmp_path, topic, "--protocol", protocol, "--qos", qos, "-C", "1", "-W", "20")
    sent = cli.run("send", topic, f"hello {protocol} {qos}", "--protocol", protocol, "--qos", qos)
    assert sent.returncode == 0, sent.stderr
    code, out, err = finish(sub)
    assert code == 0, err
    assert out == f"hello {protocol} {qos}\n".encode()
    assert err == ""  # "subscribed" is for a terminal only: noise in a script's stderr


def test_a_person_at_a_terminal_is_told_subscribed(cli, tmp_path, topic):
    """stderr a terminal: "subscribed" once the broker acknowledged (a script waits for --ready-file)."""
    leader, follower = os.openpty()
    ready = tmp_path / "ready"
    sub = subprocess.Popen([*IOTNOTIFY, "subscribe", "--ready-file", str(ready), topic, "-C", "1"], env=cli.env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    wait_for(ready.exists, 30, "subscriber ready")
    assert cli.run("send", topic, "hi").returncode == 0
    assert sub.wait(30) == 0
    said = b""
    with contextlib.suppress(OSError):  # EIO once the terminal's only writer is gone and all was read
        while chunk := os.read(leader, 4096):
            said += chunk
    os.close(leader)
    assert said.decode() == "subscribed\r\n"


@pytest.mark.slow
def test_lines_mode_delivers_every_line_complete_and_in_order(cli, tmp_path, topic):
    sub = cli.subscriber(tmp_path, topic, "-C", "400", "-W", "60")
    lines = "".join(f"line {i}\n" for i in range(400))
    sent = cli.run("send", "-l", topic, input=lines)
    assert sent.returncode == 0, sent.stderr
    code, out, err = finish(sub, 60)
    assert code == 0, err
    assert out.decode() == lines


def test_lines_go_out_as_they_arrive_not_at_eof(cli, tmp_path, topic):
    sub = cli.subscriber(tmp_path, topic, "-C", "1", "-W", "30")
    sender = subprocess.Popen([*IOTNOTIFY, "send", "-l", topic], stdin=subprocess.PIPE, env=cli.env,
                              stderr=subprocess.PIPE)
    sender.stdin.write(b"first\n")
    sender.stdin.flush()
    code, out, _ = finish(sub)  # the sender's stdin is still open
    assert (code, out) == (0, b"first\n")
    sender.communicate(timeout=30)  # closes its stdin: end of input
    assert sender.returncode == 0


def test_message_from_file_and_whole_stdin(cli, tmp_path, topic):
    payload = b"line one\nline two\n\x00\xff binary"
    (tmp_path / "msg.bin").write_bytes(payload)
    sub = cli.subscriber(tmp_path, topic, "-C", "3", "-W", "20", "--json")
    assert cli.run("send", topic, "-f", str(tmp_path / "msg.bin")).returncode == 0
    assert cli.run("send", topic, "-s", input=b"from stdin").returncode == 0
    assert cli.run("send", topic, "-", input=b"dash").returncode == 0
    _code, out, _err = finish(sub)
    records = [json.loads(line) for line in out.splitlines()]
    import base64

    assert base64.b64decode(records[0]["payload"]) == payload and records[0]["encoding"] == "base64"
    assert [r["payload"] for r in records[1:]] == ["from stdin", "dash"]
    assert "encoding" not in records[1]


def test_json_lines_have_topic_payload_qos_retain_and_time(cli, tmp_path, topic):
    sub = cli.subscriber(tmp_path, topic, "-C", "1", "-W", "20", "--json")
    cli.run("send", topic, '{"n": 1} ünïcode')
    _code, out, _ = finish(sub)
    record = json.loads(out)
    assert record["topic"] == topic and record["payload"] == '{"n": 1} ünïcode'
    assert record["qos"] == 1 and record["retain"] is False
    assert record["time"].endswith("Z") and record["time"][:2] == "20"


def test_verbose_prefixes_the_topic(cli, tmp_path, topic):
    sub = cli.subscriber(tmp_path, topic + "/#", "-v", "-C", "1", "-W", "20")
    cli.run("send", topic + "/x", "payload here")
    assert finish(sub)[1] == f"{topic}/x payload here\n".encode()


def test_retained_message_reaches_a_later_subscriber(cli, topic):
    assert cli.run("send", "--retain", topic, "kept").returncode == 0
    result = cli.run("subscribe", "--json", "-C", "1", "-W", "20", topic)
    assert result.returncode == 0
    assert json.loads(result.stdout)["retain"] is True
    cli.run("send", "--retain", topic, "-s", input=b"")  # clear it


def test_more_than_eight_filters_are_all_subscribed(cli, tmp_path, topic):
    filters = [f"{topic}/{i}" for i in range(12)]
    sub = cli.subscriber(tmp_path, *filters, "-v", "-C", "2", "-W", "20")
    cli.run("send", f"{topic}/0", "first")
    cli.run("send", f"{topic}/11", "last")
    assert finish(sub)[1] == f"{topic}/0 first\n{topic}/11 last\n".encode()


def test_timeout_with_fewer_messages_exits_7(cli, topic):
    result = cli.run("subscribe", topic, "-C", "2", "-W", "1", "--quiet")
    assert result.returncode == 7
    assert result.stderr.strip() == "iotnotify: error: received 0 of 2 messages within 1 s"


def test_quiet_prints_nothing_on_stderr(cli, tmp_path, topic):
    sub = cli.subscriber(tmp_path, topic, "-C", "1", "-W", "20", "--quiet")
    cli.run("send", topic, "x")
    assert finish(sub)[2] == ""


def test_closed_output_pipe_exits_quietly(cli, tmp_path, topic):
    ready = tmp_path / "ready"
    shell = subprocess.Popen(
        ["bash", "-c", f"set -o pipefail; {shlex.join(IOTNOTIFY)} subscribe --ready-file {ready} {topic} | head -1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli.env)
    wait_for(ready.exists, 30, "subscriber ready")
    for i in range(5):
        cli.run("send", topic, f"m{i}")
    out, err = shell.communicate(timeout=30)
    assert out == b"m0\n"
    assert shell.returncode == 0
    assert err.decode() == ""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_exits_130_or_143_with_one_line(cli, tmp_path, topic, sig):
    """Ctrl-C exits 130, SIGTERM 143 (128 + the signal, as shells report them)."""
    sub = cli.subscriber(tmp_path, topic)
    sub.send_signal(sig)
    code, _out, err = finish(sub)
    assert code == (130 if sig == signal.SIGINT else 143)
    assert err == "iotnotify: interrupted after 0 messages\n"


def test_interrupt_after_messages_counts_what_was_printed(cli, tmp_path, topic):
    """Written where they arrive, the messages printed before Ctrl-C are the ones counted."""
    sub = cli.subscriber(tmp_path, topic)
    for i in range(3):
        assert cli.run("send", topic, f"m{i}").returncode == 0
    wait_for(lambda: select.select([sub.stdout], [], [], 0)[0], 10, "the messages printed")
    time.sleep(0.5)
    sub.send_signal(signal.SIGINT)
    code, out, err = finish(sub)
    assert (code, out) == (130, b"m0\nm1\nm2\n")
    assert err == "iotnotify: interrupted after 3 messages\n"


def test_interrupted_send_reports_and_exits_130(cli, tmp_path, topic):
    sub = cli.subscriber(tmp_path, topic, "-C", "1", "-W", "30")
    sender = subprocess.Popen([*IOTNOTIFY, "send", "-l", topic], stdin=subprocess.PIPE, env=cli.env,
                              stderr=subprocess.PIPE)
    sender.stdin.write(b"one\n")
    sender.stdin.flush()
    assert finish(sub)[:2] == (0, b"one\n")  # the broker took it (and acknowledged it)
    sender.send_signal(signal.SIGINT)
    _, err = sender.communicate(timeout=20)
    assert sender.returncode == 130
    assert err.decode() == "iotnotify: interrupted: 0 of 1 message not acknowledged\n"


@pytest.mark.parametrize("args, message", [
    (["send", "", "x"], "topic is empty"),
    (["send", "a/+/b", "x"], "contains a wildcard"),
    (["send", "a/#", "x"], "contains a wildcard"),
    (["send", "t" * 257, "x"], "topic is 257 UTF-8 bytes, over the limit of 256"),
    (["send", "t"], "give exactly one of MESSAGE, -m, -f FILE, -s or -l"),
    (["send", "t", "x", "-l"], "give exactly one of MESSAGE, -m, -f FILE, -s or -l (got MESSAGE, -l)"),
    (["send", "t", "--qos", "2", "x"], "'--qos'"),
    (["subscribe", "a/#/b"], "'#' must be a whole level and the last one"),
    (["subscribe", "a+"], "'+' must be a whole level"),
    (["subscribe", ""], "filter is empty"),
    (["subscribe", "t", "--reconnect-delay", "5,1"], "need 0 < MIN <= MAX"),
    (["tail", "t", "--reconnect-delay", "x"], "is not MIN,MAX in seconds"),
])
def test_bad_input_is_a_usage_error(cli, args, message):
    result = cli.run(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_topic_that_is_not_utf8_is_refused(cli):
    proc = subprocess.run([*map(os.fsencode, IOTNOTIFY), b"send", b"t\xff", b"x"], env=cli.env, capture_output=True)
    assert proc.returncode == 2 and b"is not valid UTF-8" in proc.stderr


def test_ready_file_that_cannot_be_created(cli, topic):
    result = cli.run("subscribe", topic, "--ready-file", "/nonexistent/dir/ready", "--quiet")
    assert result.returncode == 2
    assert result.stderr.strip() == "iotnotify: error: cannot create --ready-file /nonexistent/dir/ready: No such file or directory"


def broker_log(stack) -> str:
    return (stack.state / "iotnotify" / "local" / "broker" / "mosquitto.log").read_text()


def test_client_id_is_the_one_given(any_id_cli, any_id_stack, topic):
    assert any_id_cli.run("send", topic, "x", "--client-id", "my-own-client").returncode == 0
    assert " as my-own-client " in broker_log(any_id_stack)


def test_several_connections_get_ids_of_their_own_below_the_one_given(any_id_cli, any_id_stack, tmp_path, topic):
    sub = any_id_cli.subscriber(tmp_path, topic, "-C", "20", "-W", "30")
    lines = "".join(f"{i}\n" for i in range(20))
    result = any_id_cli.run("send", "-l", topic, "--connections", "3", "--client-id", "batch", input=lines)
    assert result.returncode == 0, result.stderr
    code, out, _ = finish(sub)
    assert code == 0 and sorted(map(int, out.split())) == list(range(20))  # order only per connection
    assert all(f" as batch-{n} " in broker_log(any_id_stack) for n in (1, 2, 3))


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_client_id_the_keys_are_not_for_is_refused(cli, topic, protocol):
    owner = json.loads(cli.run("keys", "--json").stdout)["clientId"]
    result = cli.run("send", topic, "x", "--client-id", "my-own-client", "--protocol", protocol)
    assert result.returncode == 10
    reason = ("refused the connection: 0x87 not authorized" if protocol == "5" else
              "closed the connection before accepting it (MQTT 3.1.1 cannot say why; AWS IoT Core does so when the "
              "keys may not connect as client id 'my-own-client')")
    assert reason in result.stderr and f"(the keys are for client id {owner} and ids below it" in result.stderr
    assert result.stderr.count("\n") == 1
    mine = f"{owner}-mine-{protocol.replace('.', '')}"  # one id per run: AWS takes one CONNECT a second per id
    assert cli.run("send", topic, "x", "--client-id", mine, "--protocol", protocol).returncode == 0


def test_processes_sharing_cached_keys_get_their_own_ids_below_the_keys_client_id(cli, stack, tmp_path, topic):
    import re

    owner = json.loads(cli.run("keys", "--json").stdout)["clientId"]
    before = len(broker_log(stack))
    sub = cli.subscriber(tmp_path, topic, "-C", "2", "-W", "20")  # stays connected while two sends run
    assert cli.run("send", topic, "one", "--via", "mqtt").returncode == 0  # client ids are MQTT's
    assert cli.run("send", topic, "two", "--via", "mqtt").returncode == 0
    assert finish(sub)[1] == b"one\ntwo\n"
    ids = re.findall(rf" as ({re.escape(owner)}-[0-9a-f]{{8}}) ", broker_log(stack)[before:])
    assert len(ids) == 3 and len(set(ids)) == 3


@pytest.mark.mosquitto
def test_client_id_is_random_when_the_keys_name_none(fake_endpoint, tmp_path, topic):
    import re

    from tests.helpers import Cli, broker_behind_front, tutorial_keys, user_env

    with broker_behind_front(tmp_path) as (broker, wss, ca_file):  # a front that takes any keys
        fake_endpoint.answer(body=tutorial_keys(port=wss))
        cli = Cli(user_env(tmp_path))
        for _ in range(2):
            assert cli.run("--endpoint", fake_endpoint.url, "--ca-file", ca_file, "send", "--via", "mqtt", topic,
                           "x").returncode == 0
        log = broker.log_file.read_text()
    ids = re.findall(r" as (iotnotify-[0-9a-f]{12}) ", log)
    assert len(ids) == 2 and len(set(ids)) == 2

def test_format_template(cli, tmp_path, topic):
    sub = cli.subscriber(tmp_path, topic, "-C", "1", "-W", "20", "--format", "{topic}|{qos}|{json}")
    cli.run("send", topic, '{"a": 1}')
    assert finish(sub)[1] == f'{topic}|1|{{"a":1}}\n'.encode()


def test_pretty_and_no_newline(cli, tmp_path, topic):
    sub = cli.subscriber(tmp_path, topic, "-C", "2", "-W", "20", "--pretty", "-N")
    cli.run("send", topic, '{"a": 1}')
    cli.run("send", topic, "plain")
    assert finish(sub)[1] == b'{\n  "a": 1\n}plain'


def test_retained_only_prints_what_is_retained_then_exits(cli, tmp_path, topic):
    cli.run("send", "--retain", f"{topic}/a", "kept a")
    cli.run("send", "--retain", f"{topic}/b", "kept b")
    result = cli.run("subscribe", f"{topic}/a", f"{topic}/b", "--retained-only", "-v", "--quiet", timeout=30)
    assert result.returncode == 0
    assert sorted(result.stdout.splitlines()) == [f"{topic}/a kept a", f"{topic}/b kept b"]
    for sub in ("a", "b"):
        cli.run("send", "--retain", f"{topic}/{sub}", "-s", input=b"")


def test_retained_messages_reach_only_a_filter_equal_to_their_topic(cli, tmp_path, topic):
    """AWS IoT Core (and so the local stack) sends a retained message upon subscription only to a
    filter that is its exact topic; a wildcard filter gets the live messages only."""
    cli.run("send", "--retain", f"{topic}/a", "kept")
    sub = cli.subscriber(tmp_path, f"{topic}/#", "-C", "1", "-W", "20", "-v")
    cli.run("send", f"{topic}/a", "live")
    assert finish(sub)[1] == f"{topic}/a live\n".encode()
    result = cli.run("subscribe", f"{topic}/#", "--retained-only")
    assert result.returncode == 2
    assert result.stderr == (f"iotnotify: error: --retained-only: AWS IoT Core sends a retained message only to a "
                             f"filter that is its topic, and '{topic}/#' has a wildcard\n")
    cli.run("send", "--retain", f"{topic}/a", "-s", input=b"")


def test_no_retained_skips_the_retained_message(cli, tmp_path, topic):
    cli.run("send", "--retain", topic, "old news")
    sub = cli.subscriber(tmp_path, topic, "-C", "1", "-W", "20", "--no-retained")
    cli.run("send", topic, "live")
    assert finish(sub)[1] == b"live\n"
    cli.run("send", "--retain", topic, "-s", input=b"")


@pytest.mark.parametrize("args, message", [
    (["--json", "--format", "{topic}"], "cannot be combined"),
    (["--format", "{nope}"], "unknown field {nope}"),
    (["--no-retained", "--retained-only"], "cannot be combined"),
])
def test_conflicting_or_bad_output_options(cli, topic, args, message):
    result = cli.run("subscribe", topic, *args)
    assert result.returncode == 2 and message in result.stderr


def test_subscribe_writes_each_message_to_the_pipe_as_it_arrives(fast_cli, tmp_path, topic):
    """Each message is written and flushed in the thread that received it (Inbox.deliver_to), so a
    reader of the pipe sees a lone message at once, not when the subscriber exits, and a burst
    whole and in order. (A permissive stack: a burst of 5,000 needs more than AWS's 100 messages a
    second.)"""
    cli = fast_cli
    import os
    import select

    def read(fd: int, size: int, timeout: float = 10) -> bytes:
        data, deadline = b"", time.monotonic() + timeout
        while len(data) < size and select.select([fd], [], [], max(deadline - time.monotonic(), 0))[0]:
            data += os.read(fd, size - len(data))
        return data

    buffered = Cli({k: v for k, v in cli.env.items() if k != "PYTHONUNBUFFERED"})  # as a user's would be
    sub = buffered.subscriber(tmp_path, topic, "--quiet")
    fd = sub.stdout.fileno()
    try:
        for i in range(3):
            assert cli.run("send", topic, f"lone {i}").returncode == 0
            assert read(fd, 7) == f"lone {i}\n".encode()
        burst = b"".join(b"%d\n" % i for i in range(5000))
        assert cli.run("send", "-l", topic, input=burst).returncode == 0
        assert read(fd, len(burst)) == burst
    finally:
        sub.kill()
        sub.communicate()


def _message(n: int):  # type: ignore[no-untyped-def]
    from iotnotify.messages import Message

    return Message("t", b"%d" % n)


def test_the_inbox_renders_what_was_queued_first_then_each_where_it_arrives():
    """Inbox.deliver_to: the messages queued before it (retained ones after the SUBACK) go first, in
    order, rendered then; then each is rendered in the receiving thread; wait() writes and raises
    how the stream ended."""
    import threading

    from iotnotify.errors import ConnectError
    from iotnotify.inbox import Inbox

    inbox, rendered, written = Inbox(), [], []

    def render(message) -> bytes:  # type: ignore[no-untyped-def]
        rendered.append((message.payload, threading.current_thread().name))
        return message.payload + b"\n"

    inbox.put(_message(0))
    inbox.put(_message(1))
    inbox.deliver_to(render, lambda data, _count: written.append(bytes(data)))
    receiver = threading.Thread(target=lambda: [inbox.put(_message(n)) for n in range(2, 5)], name="receiver")
    receiver.start()
    receiver.join()
    main = threading.current_thread().name
    assert rendered == [(b"0", main), (b"1", main), (b"2", "receiver"), (b"3", "receiver"), (b"4", "receiver")]
    waiter, ended = waiting(inbox)
    wait_for(lambda: b"".join(written) == b"0\n1\n2\n3\n4\n", 5, "the output")
    inbox.fail(ConnectError("connection lost"))
    waiter.join(5)
    assert [str(e) for e in ended] == ["connection lost"]


def test_a_lone_message_is_written_at_once_and_a_burst_in_few_writes():
    """A write to the pipe per burst, not per message (a reader such as `| grep` wakes once for many
    lines); a message on its own goes out at once (the waiting thread does not wait for more)."""
    from iotnotify.errors import ConnectError
    from iotnotify.inbox import FLUSH_AFTER, Inbox

    inbox, written = Inbox(), []
    inbox.deliver_to(lambda m: m.payload + b"\n", lambda data, _count: written.append(bytes(data)))
    waiter, ended = waiting(inbox)
    try:
        for n in range(3):
            time.sleep(0.01)
            started = time.monotonic()
            inbox.put(_message(n))
            while b"".join(written).count(b"\n") < n + 1 and time.monotonic() - started < 5:
                time.sleep(0.0001)
            assert time.monotonic() - started < FLUSH_AFTER + 0.05  # not held back for a burst
        time.sleep(0.01)
        before = len(written)
        for n in range(3, 503):
            inbox.put(_message(n))
        wait_for(lambda: b"".join(written).count(b"\n") == 503, 5, "the output")
        assert b"".join(written) == b"".join(b"%d\n" % n for n in range(503))  # whole, in order
        assert len(written) - before < 100  # not a write per message (500 of them)
    finally:
        inbox.fail(ConnectError("connection lost"))
        waiter.join(5)
    assert not waiter.is_alive() and ended


def test_a_stalled_writer_does_not_hold_the_receiving_thread_until_the_output_is_full():
    """The receiving thread (awscrt's, which also keeps the connection alive) only renders: while
    the command's thread is stuck writing to a reader that stopped, messages go on arriving, up to
    the inbox's limits; beyond them the receiving thread waits, and all of it goes out in order
    once the reader reads again."""
    import threading

    from iotnotify.errors import ConnectError
    from iotnotify.inbox import Inbox

    reader_back, written = threading.Event(), []

    def write(data: bytes, _count: int) -> None:
        reader_back.wait(10)  # a reader that stopped reading
        written.append(bytes(data))

    rendered: list[bytes] = []

    def render(message) -> bytes:  # type: ignore[no-untyped-def]
        rendered.append(message.payload)
        return message.payload + b"\n"

    inbox = Inbox(limit=100)
    inbox.deliver_to(render, write)
    waiter, ended = waiting(inbox)
    started = time.monotonic()
    for n in range(100):
        inbox.put(_message(n))
    assert time.monotonic() - started < 1  # the stalled write held none of them
    late = threading.Thread(target=lambda: [inbox.put(_message(n)) for n in range(100, 250)], daemon=True)
    late.start()
    late.join(0.5)
    assert late.is_alive()  # the output is full: held back now...
    assert len(rendered) == 101  # ...counting what is being written: 100 wait, the 101st waits for room
    reader_back.set()
    late.join(5)
    assert not late.is_alive()
    wait_for(lambda: b"".join(written).count(b"\n") >= 250, 5, "the output")
    assert b"".join(written) == b"".join(b"%d\n" % n for n in range(250))
    inbox.fail(ConnectError("connection lost"))
    waiter.join(5)
    assert ended


def test_the_end_during_a_burst_still_ends_the_wait(monkeypatch):
    import threading

    from iotnotify.errors import ConnectError
    from iotnotify.inbox import Inbox

    inbox, first = Inbox(), threading.Event()
    real_sleep = time.sleep

    def sleep_then_end(seconds: float) -> None:  # the waiting thread's pause before writing a burst
        real_sleep(seconds)
        inbox.fail(ConnectError("connection lost"))  # the end comes in meanwhile

    monkeypatch.setattr("iotnotify.inbox.time.sleep", sleep_then_end)
    monkeypatch.setattr("iotnotify.inbox.BURST", 60.0)  # every message after the first is in a burst
    inbox.deliver_to(lambda m: m.payload, lambda _data, _count: first.set())
    waiter, ended = waiting(inbox)
    inbox.put(_message(0))  # on its own: written at once
    assert first.wait(5)
    inbox.put(_message(1))  # in a burst: written after a pause, during which the end comes
    waiter.join(3)
    assert not waiter.is_alive() and [str(e) for e in ended] == ["connection lost"]


def test_stop_writes_what_was_rendered():
    from iotnotify.inbox import Inbox

    inbox, written = Inbox(), []
    inbox.deliver_to(lambda m: m.payload + b"\n", lambda data, _count: written.append(bytes(data)))
    for n in range(50):  # a burst nobody wrote yet (no wait())
        inbox.put(_message(n))
    inbox.stop()  # Ctrl-C: the count printed is what reached the output
    assert b"".join(written).count(b"\n") == 50


def test_stop_lets_a_message_waiting_for_room_in_and_writes_it():
    import threading

    from iotnotify.inbox import Inbox

    inbox, written = Inbox(limit=1), []
    inbox.deliver_to(lambda m: m.payload, lambda data, _count: written.append(bytes(data)))
    inbox.put(_message(0))
    held = threading.Thread(target=inbox.put, args=(_message(1),), daemon=True)  # no room: waits
    held.start()
    held.join(0.3)
    assert held.is_alive()
    inbox.stop()
    held.join(2)
    assert b"".join(written) == b"01"


def test_ctrl_c_while_writing_loses_nothing_stop_writes_it():
    from iotnotify.inbox import Inbox

    calls: list[bytes] = []

    def write(data: bytes, _count: int) -> None:
        if not calls:
            calls.append(b"")
            raise KeyboardInterrupt  # the reader stalled and the user pressed Ctrl-C
        calls.append(bytes(data))

    inbox = Inbox()
    inbox.deliver_to(lambda m: m.payload + b"\n", write)
    for n in range(3):
        inbox.put(_message(n))
    with pytest.raises(KeyboardInterrupt):
        inbox.wait()
    inbox.put(_message(3))  # after: not taken any more once stopped, but until then it is
    inbox.stop()
    assert b"".join(calls) == b"0\n1\n2\n3\n"


def test_a_failed_write_or_render_ends_the_wait_and_nothing_more_is_rendered():
    from iotnotify.inbox import Inbox

    def render(message) -> bytes:  # type: ignore[no-untyped-def]
        if message.payload == b"1":
            raise ValueError("cannot render")
        return message.payload

    inbox, written = Inbox(), []
    inbox.deliver_to(render, lambda data, _count: written.append(bytes(data)))
    for n in range(3):
        inbox.put(_message(n))
    with pytest.raises(ValueError, match="cannot render"):
        inbox.wait()

    def closed(_data: bytes, _count: int) -> None:
        raise BrokenPipeError("closed")

    inbox = Inbox()
    inbox.deliver_to(lambda m: m.payload, closed)
    inbox.put(_message(0))
    with pytest.raises(BrokenPipeError):
        inbox.wait()


def test_a_stopped_inbox_delivers_nothing_and_an_end_before_delivery_is_kept():
    from iotnotify.errors import ConnectError
    from iotnotify.inbox import Inbox

    inbox, got = Inbox(), []
    inbox.deliver_to(lambda m: m.payload, lambda data, _count: got.append(bytes(data)))
    inbox.put(_message(0))
    inbox.stop()
    inbox.put(_message(1))
    assert got == [b"0"]
    ended = Inbox()
    ended.put(_message(0))
    ended.fail(ConnectError("refused"))
    ended.put(_message(1))  # after the end: not rendered before it is raised
    later: list = []
    ended.deliver_to(lambda m: m.payload, lambda data, _count: later.append(bytes(data)))
    with pytest.raises(ConnectError, match="refused"):
        ended.wait()
    ended.stop()
    assert later == [b"0"]


@pytest.mark.slow
def test_a_reader_that_stops_for_10_seconds_costs_the_connection_nothing(fast_cli, tmp_path, topic):
    """`subscribe` writes in its own thread, not awscrt's, whether it prints each message where it
    arrives (awscrt's thread renders it into the output, the command's thread writes) or takes them
    from the queue (-C: the command's thread reads, renders and writes): a reader that stops
    reading for 10 s (with more waiting than a pipe holds) stalls no keep-alive (5 s: the broker
    would end a connection silent for 7.5 s), so no reconnection, and everything, what came during
    the stall too, arrives in order once it reads again. On the permissive stack: what is tested is
    the client's threads, and AWS's shortest keep-alive (30 s) would make the stall 50 s."""
    import os
    import select

    cli = fast_cli
    subs = [cli.subscriber(tmp_path, topic, "--keepalive", "5", "-q", "1"),
            cli.subscriber(tmp_path, topic, "--keepalive", "5", "-q", "1", "-C", "101")]
    try:
        lines = b"".join(b"%04d %s\n" % (n, b"x" * 2000) for n in range(100))  # 200 KB: more than a pipe holds
        assert cli.run("send", "-q", "1", "-l", topic, input=lines).returncode == 0
        time.sleep(10)  # the readers stopped: longer than the broker lets a connection be silent (7.5 s)
        assert cli.run("send", "-q", "1", topic, "after the stall").returncode == 0
        expected = lines + b"after the stall\n"
        for sub in subs:
            fd, data, deadline = sub.stdout.fileno(), b"", time.monotonic() + 30
            while len(data) < len(expected) and select.select([fd], [], [], max(deadline - time.monotonic(), 0))[0]:
                data += os.read(fd, 1 << 16)
            assert data == expected
    finally:
        errs = []
        for sub in subs:
            sub.kill()
            errs.append(sub.communicate()[1])
    for err in errs:
        assert b"connection lost" not in err and b"reconnect" not in err, err
