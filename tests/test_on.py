"""`on FILTER... -- CMD`: CMD runs for each message, against the local stack with AWS's rules (and a
peer, mosquitto_pub on the plain listener, where iotnotify itself could not send what is tested)."""

import json
import os
import signal
import subprocess
import time

import pytest

from tests.helpers import IOTNOTIFY, Cli, wait_for
from tests.test_request_respond import finish


def on(cli: Cli, tmp_path, *args: str) -> subprocess.Popen[bytes]:
    """`iotnotify on ARGS`, returned once it is subscribed."""
    ready = tmp_path / f"on-{len(list(tmp_path.iterdir()))}.ready"
    proc = subprocess.Popen([*IOTNOTIFY, "on", "--ready-file", str(ready), *args], env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    wait_for(lambda: ready.exists() or proc.poll() is not None, 20, "`on` subscribed")
    assert proc.poll() is None, proc.communicate()
    return proc


def send(cli: Cli, *args: str) -> None:
    result = cli.run("send", *args)
    assert result.returncode == 0, result.stderr


RECORD = 'printf "%s|%s|%s|%s|%s\\n" "$IOTNOTIFY_TOPIC" "$IOTNOTIFY_QOS" "$IOTNOTIFY_RETAIN" "$(cat)" '


def test_the_command_runs_for_each_message_with_the_payload_on_stdin_in_arrival_order(cli, tmp_path, topic):
    running = on(cli, tmp_path, f"{topic}/#", "-C", "3", "--", "sh", "-c", RECORD + '"$IOTNOTIFY_TIME"')
    for n in range(3):
        send(cli, f"{topic}/{n}", f"message {n}", "-q", str(n % 2))
    code, out, err = finish(running)
    assert (code, err) == (0, "")
    lines = [line.split("|") for line in out.splitlines()]
    assert [line[:4] for line in lines] == [[f"{topic}/{n}", str(n % 2), "false", f"message {n}"] for n in range(3)]
    assert all(line[4].endswith("Z") and "T" in line[4] for line in lines)  # the receive time, ISO 8601 UTC


def test_over_mqtt_311_too(cli, tmp_path, topic):
    running = on(cli, tmp_path, topic, "-C", "2", "--protocol", "3.1.1", "-q", "1", "--", "sh", "-c", RECORD)
    send(cli, topic, "one", "--protocol", "3.1.1")
    send(cli, topic, "two")
    code, out, err = finish(running)
    assert (code, out, err) == (0, f"{topic}|1|false|one|\n{topic}|1|false|two|\n", "")


def test_the_message_properties_are_in_the_environment(cli, tmp_path, topic):
    show = ('printf "%s|%s|%s|%s|%s|%s\\n" "$IOTNOTIFY_CONTENT_TYPE" "$IOTNOTIFY_USER_TRACE_ID" '
            '"$IOTNOTIFY_USER_PROPERTIES" "$IOTNOTIFY_CORRELATION_DATA" "$IOTNOTIFY_CORRELATION_ENCODING" '
            '"${IOTNOTIFY_USER_STALE-unset}"')
    running = on(cli, tmp_path, topic, "-C", "1", "--", "sh", "-c", show)
    send(cli, topic, "x", "--content-type", "text/plain", "--user-property", "trace-id=a b", "--no-id",
         "--user-property", "stale=", "--correlation-data", "hex:ff00")
    code, out, _ = finish(running)
    assert code == 0
    assert out == 'text/plain|a b|[["trace-id", "a b"], ["stale", ""]]|/wA=|base64|\n'


def test_variables_from_the_callers_environment_do_not_pass_for_the_messages(cli, tmp_path, topic):
    env = {**cli.env, "IOTNOTIFY_USER_ROLE": "admin", "IOTNOTIFY_CONTENT_TYPE": "stale"}
    ready = tmp_path / "ready"
    running = subprocess.Popen([*IOTNOTIFY, "on", topic, "-C", "1", "--ready-file", str(ready), "--", "sh", "-c",
                                'echo "${IOTNOTIFY_USER_ROLE-unset} ${IOTNOTIFY_CONTENT_TYPE-unset} $HOME"'],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(ready.exists, 20, "`on` subscribed")
    send(cli, topic, "x")
    code, out, _ = finish(running)
    assert (code, out) == (0, f"unset unset {env['HOME']}\n")


def test_a_payload_that_is_not_utf8_reaches_the_command_as_it_was_sent(cli, tmp_path, topic):
    out = tmp_path / "payload"
    running = on(cli, tmp_path, topic, "-C", "1", "--", "sh", "-c", f"cat > {out}")
    payload = bytes(range(256)) * 300  # more than a pipe holds at once
    result = cli.run_bytes("send", topic, "-s", input=payload)
    assert result.returncode == 0
    assert finish(running)[0] == 0
    assert out.read_bytes() == payload


def test_a_failing_command_is_one_warning_and_it_goes_on_then_exits_11(cli, tmp_path, topic):
    running = on(cli, tmp_path, topic, "-C", "3", "--command-timeout", "1", "--", "sh", "-c",
                 'case "$(cat)" in fail) exit 3;; slow) sleep 30;; *) echo ok;; esac')
    for payload in ("fail", "slow", "fine"):
        send(cli, topic, payload)
    started = time.monotonic()
    code, out, err = finish(running)
    assert time.monotonic() - started < 20  # the slow one was stopped, with what it started
    assert (code, out) == (11, "ok\n")
    assert err.splitlines() == [f"iotnotify: warning: message on {topic}: sh exited 3",
                                (f"iotnotify: warning: message on {topic}: sh did not finish within the "
                                "--command-timeout: stopped"),
                                "iotnotify: error: sh failed for 2 of 3 messages"]


def test_a_command_that_cannot_start_is_a_warning_too(cli, tmp_path, topic):
    running = on(cli, tmp_path, topic, "-C", "1", "-v", "--", str(tmp_path / "missing"))
    send(cli, topic, "x")
    code, _, err = finish(running)
    assert code == 11
    assert f"iotnotify: warning: message on {topic}: cannot run {tmp_path / 'missing'}: No such file" in err


def test_verbose_says_for_which_message_the_command_ran(cli, tmp_path, topic):
    running = on(cli, tmp_path, topic, "-C", "1", "-v", "--", "true")
    send(cli, topic, "x")
    assert finish(running)[::2] == (0, f"ran true for a message on {topic}\n")


@pytest.mark.parametrize("parallel", ["1", "2"])
def test_one_message_at_a_time_unless_parallel(cli, tmp_path, topic, parallel):
    """Two commands that each wait for the other's mark: they finish only when they run together."""
    marks = tmp_path / "marks"
    marks.mkdir()
    running = on(cli, tmp_path, topic, "-C", "2", "--parallel", parallel, "--command-timeout", "3", "--", "sh",
                 "-c", f'touch {marks}/"$(cat)"; while [ ! -e {marks}/a ] || [ ! -e {marks}/b ]; do sleep 0.05; done')
    send(cli, topic, "a")
    send(cli, topic, "b")
    code, _, err = finish(running)
    assert (code, err.count("did not finish")) == ((0, 0) if parallel == "2" else (11, 1))


def test_exclude_and_grep_choose_the_messages(cli, tmp_path, topic):
    running = on(cli, tmp_path, f"{topic}/#", "-C", "2", "--exclude", f"{topic}/debug/#", "-T", f"{topic}/+/skip",
                 "--grep", "^al(ar)?m", "--", "sh", "-c", 'echo "$IOTNOTIFY_TOPIC $(cat)"')
    for where, payload in (("debug/x", "alarm"), ("a/skip", "alarm"), ("a", "calm"), ("a", "alarm 1"),
                           ("b", "alm 2")):
        send(cli, f"{topic}/{where}", payload)
    code, out, _ = finish(running)
    assert (code, out) == (0, f"{topic}/a alarm 1\n{topic}/b alm 2\n")


@pytest.mark.parametrize("args, error", [
    (["--", "true", "--grep", "("], None),  # after --: the command's own
    (["--grep", "(", "--", "true"], ("--grep '(' is not a valid pattern: missing ), unterminated subpattern at "
                                    "position 0")),
    (["--exclude", "a/#/b", "--", "true"], "--exclude: filter 'a/#/b': '#' must be a whole level and the last one"),
    ([], "give the command after --: iotnotify on FILTER -- CMD [ARGS...]"),
])
def test_bad_input_is_one_line_and_exit_2(cli, topic, args, error):
    result = cli.run("on", topic, "-W", "1", *args)
    if error is None:
        assert result.returncode == 7  # it ran: no message came
        return
    assert (result.returncode, result.stderr) == (2, f"iotnotify: error: {error}\n")


def test_nothing_within_the_time_exits_7(cli, topic):
    result = cli.run("on", topic, "-C", "1", "-W", "1", "--", "true")
    assert (result.returncode, result.stderr) == (7, "iotnotify: error: received 0 of 1 messages within 1 s\n")


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_stopping_it_waits_for_the_running_command_then_exits_0(cli, tmp_path, topic, how):
    started, done = tmp_path / "started", tmp_path / "done"
    running = on(cli, tmp_path, topic, "--", "sh", "-c", f"touch {started}; sleep 1; touch {done}")
    send(cli, topic, "x")
    wait_for(started.exists, 10, "the command started")
    running.send_signal(how)
    code, _, err = finish(running)
    assert (code, err) == (0, "")
    assert done.exists()


def test_a_script_waiting_for_messages_that_is_interrupted_exits_130(cli, tmp_path, topic):
    running = on(cli, tmp_path, topic, "-C", "1", "--", "true")
    running.send_signal(signal.SIGINT)
    code, _, err = finish(running)
    assert (code, err) == (130, "iotnotify: interrupted after 0 messages\n")


def test_a_qos0_flood_beyond_the_queue_is_dropped_with_a_warning_and_bounded(cli, tmp_path, topic):
    running = on(cli, tmp_path, topic, "--queue", "2", "-q", "0", "--", "sleep", "2")
    result = cli.run("send", topic, "-l", "-q", "0", input="".join(f"{n}\n" for n in range(10)))
    assert result.returncode == 0
    time.sleep(1)
    running.send_signal(signal.SIGINT)
    code, _, err = finish(running)
    assert code == 0
    dropped = [line for line in err.splitlines() if "dropped: 2 messages are waiting already (--queue 2)" in line]
    assert 5 <= len(dropped) <= 7  # one running, two waiting, the rest dropped
    assert err.splitlines()[-1] == "iotnotify: warning: 2 messages waiting were not run"


def test_the_docs_list_every_variable():
    from pathlib import Path

    from iotnotify.on import VARIABLES

    page = (Path(__file__).parent.parent / "docs" / "commands" / "on.md").read_text()
    listed = [line.split("`")[1] for line in page.splitlines() if line.startswith("| `IOTNOTIFY_")]
    assert listed == list(VARIABLES)
    assert "IOTNOTIFY_CORRELATION_ENCODING" in page


def test_a_message_from_a_peer_runs_the_command_too(cli, stack, tmp_path, topic):
    """mosquitto_pub (MQTT 5, on the plain listener) as the publisher: its properties reach CMD."""
    running = on(cli, tmp_path, topic, "-C", "1", "--", "sh", "-c",
                 'echo "$IOTNOTIFY_USER_FROM|$IOTNOTIFY_CONTENT_TYPE|$(cat)"')
    subprocess.run(["mosquitto_pub", "-V", "5", "-p", str(stack.mqtt_port), "-h", "127.0.0.1", "-q", "1", "-t", topic,
                    "-m", "from a peer", "-D", "publish", "user-property", "from", "mosquitto",
                    "-D", "publish", "content-type", "text/plain"], check=True, timeout=10)
    assert finish(running)[:2] == (0, "mosquitto|text/plain|from a peer\n")


def test_a_property_cannot_overwrite_another_variable_nor_keep_the_command_from_starting():
    from iotnotify.messages import Message
    from iotnotify.on import VALUE_BYTES, environment
    from iotnotify.properties import Properties

    env = environment(Message("t", b"", properties=Properties(user_properties=(("properties", "evil"),))), {})
    assert json.loads(env["IOTNOTIFY_USER_PROPERTIES"]) == [["properties", "evil"]]
    assert "IOTNOTIFY_TRUNCATED" not in env
    big = tuple((f"k{n}", "v" * 65_535) for n in range(20))  # 1.3 MB: more than Linux lets a command start with
    env = environment(Message("t", b"", properties=Properties(user_properties=big, content_type="x" * 65_535)), {})
    assert env["IOTNOTIFY_TRUNCATED"] == "1" and not any(k.startswith("IOTNOTIFY_USER_K") for k in env)
    assert all(len(v) <= VALUE_BYTES for v in env.values())
    assert subprocess.run(["true"], env=env).returncode == 0  # it starts


def test_messages_it_skips_are_acknowledged_so_the_flow_goes_on(cli, tmp_path, topic):
    """With --queue 1 the broker may have 2 unacknowledged QoS 1 messages with it: the 20 skipped
    ones would stop the flow before the last if they were not acknowledged."""
    running = on(cli, tmp_path, f"{topic}/#", "-C", "1", "-q", "1", "--queue", "1", "-T", f"{topic}/skip", "--",
                 "sh", "-c", "cat")
    assert cli.run("send", f"{topic}/skip", "-l", input="".join(f"{n}\n" for n in range(20))).returncode == 0
    send(cli, f"{topic}/run", "the one")
    assert finish(running)[:2] == (0, "the one")


def test_a_qos1_message_is_acknowledged_only_once_the_command_ran(any_id_stack, tmp_path, topic):
    """Killed while CMD runs, `on --session` gets the message again when it comes back: nothing the
    broker handed over is lost."""
    from tests.helpers import user_of

    cli = user_of(any_id_stack)
    started, log = tmp_path / "started", tmp_path / "log"
    first = on(cli, tmp_path, topic, "--session", "on-ack-test", "-q", "1", "--", "sh", "-c",
               f"echo $$ > {started}.tmp; mv {started}.tmp {started}; exec sleep 30")
    send(cli, topic, "deploy 42")
    wait_for(started.exists, 20, "the command started")
    first.kill()
    first.wait(timeout=10)
    os.kill(int(started.read_text()), signal.SIGKILL)  # the command (in a session of its own) holds the pipes
    first.communicate(timeout=10)
    again = cli.run("on", topic, "--session", "on-ack-test", "-q", "1", "-C", "1", "-W", "20", "--", "sh", "-c",
                    f"cat > {log}")
    assert again.returncode == 0, again.stderr
    assert log.read_text() == "deploy 42"


def test_w_alone_runs_for_that_long_and_exits_0_if_messages_came(cli, tmp_path, topic):
    running = on(cli, tmp_path, topic, "-W", "2", "--", "cat")
    send(cli, topic, "x")
    assert finish(running)[:2] == (0, "x")
