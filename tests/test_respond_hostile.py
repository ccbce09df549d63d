"""`respond` runs for days, and anyone who may publish on its filters can send it anything: nothing a
request holds ends it or grows it without bound, and every request ends in a reply or one warning
line (issue 26, items 1-3). Against the local stack with AWS's rules on."""

import json
import signal
import subprocess
import time

import pytest

from tests.helpers import Cli, broker_behind_front, mosquitto_subscriber, tutorial_keys, user_env, wait_for
from tests.test_request_respond import finish, responder


def request_json(cli: Cli, topic: str, payload: str = "x", *flags: str) -> dict:
    result = cli.run("request", f"{topic}/rpc", payload, "--response-topic", f"{topic}/reply", "--json", "-W", "20",
                     *flags)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def still_running(proc) -> None:
    assert proc.poll() is None, finish(proc)


def test_a_reply_the_keys_may_not_send_is_not_sent_and_the_next_request_is_answered(cli, tmp_path, topic):
    answering = responder(cli, tmp_path, f"{topic}/rpc", "--", "cat")
    sent = cli.run("send", f"{topic}/rpc", "to elsewhere", "--qos", "0", "--response-topic", "elsewhere/x")
    assert sent.returncode == 0, sent.stderr
    assert request_json(cli, topic, "next")["payload"] == "next"  # still there, still connected
    still_running(answering)
    answering.send_signal(signal.SIGINT)
    code, _, err = finish(answering)
    assert code == 0
    warning = (f"iotnotify: warning: request on {topic}/rpc: reply not sent: not allowed: the keys may not publish "
               "to 'elsewhere/x'")
    assert [line for line in err.splitlines() if "elsewhere" in line] == [line for line in err.splitlines()
                                                                          if line.startswith(warning)]
    assert len([line for line in err.splitlines() if line.startswith(warning)]) == 1
    assert "closed the connection" not in err  # refused before it went: AWS's rules never saw it


def test_a_command_whose_last_stderr_line_is_9_kb_is_answered_with_a_bounded_error(cli, tmp_path, topic):
    answering = responder(cli, tmp_path, f"{topic}/rpc", "--", "sh", "-c",
                          "cat; head -c 9000 /dev/zero | tr '\\0' e >&2; echo >&2; exit 4")
    reply = request_json(cli, topic, "first")
    [(name, value)] = reply["user_properties"]
    assert name == "error" and value.startswith("exit 4: eeee") and len(value.encode()) <= 1024
    assert request_json(cli, topic, "second")["payload"] == "second"
    still_running(answering)
    answering.send_signal(signal.SIGINT)
    assert finish(answering)[0] == 0


def test_a_nul_in_the_commands_stderr_is_escaped_in_the_error_property(cli, tmp_path, topic):
    answering = responder(cli, tmp_path, f"{topic}/rpc", "-C", "1", "--", "sh", "-c", "printf 'a\\000b\\033c' >&2; exit 1")
    reply = request_json(cli, topic)
    assert reply["user_properties"] == [["error", "exit 1: a\\x00b\\x1bc"]]
    code, _, err = finish(answering)
    assert code == 0
    assert "sh exited 1: a\\x00b\\x1bc (answered with a user property `error`)" in err


def test_output_over_the_brokers_limit_is_answered_with_an_error_not_dropped(cli, tmp_path, topic):
    answering = responder(cli, tmp_path, f"{topic}/rpc", "-C", "1", "--", "sh", "-c", "head -c 200000 /dev/zero")
    reply = request_json(cli, topic)
    assert reply["payload"] == ""
    assert reply["user_properties"] == [
        ["error", "iotnotify: its output of 200000 bytes is over the broker's limit of 131072"]]
    code, _, err = finish(answering)
    assert code == 0
    assert "its output of 200000 bytes is over the broker's limit of 131072 (answered with" in err


def test_count_exits_6_when_a_request_got_no_reply(cli, tmp_path, topic):
    answering = responder(cli, tmp_path, f"{topic}/rpc", "-C", "1", "--", "cat")
    assert cli.run("send", f"{topic}/rpc", "x", "--response-topic", "elsewhere/x").returncode == 0
    code, _, err = finish(answering)
    assert code == 6
    assert err.splitlines()[-1] == "iotnotify: error: 1 of 1 request got no reply (see the warnings above)"


def test_qos_0_requests_beyond_the_queue_are_refused_each_with_a_warning(cli, tmp_path, topic):
    started, done = tmp_path / "started", tmp_path / "done"
    answering = responder(cli, tmp_path, f"{topic}/rpc", "--queue", "2", "--", "sh", "-c",
                          f"touch {started}; sleep 2; cat; echo >> {done}")
    assert cli.run("send", f"{topic}/rpc", "r1", "--qos", "0", "--response-topic", f"{topic}/reply").returncode == 0
    wait_for(started.exists, 10, "the first request's command")
    more = cli.run("send", f"{topic}/rpc", "-l", "--qos", "0", "--response-topic", f"{topic}/reply",
                   input="r2\nr3\nr4\nr5\nr6\n")
    assert more.returncode == 0, more.stderr
    wait_for(lambda: done.exists() and len(done.read_text().splitlines()) == 3, 30, "r1, then r2 and r3 answered")
    time.sleep(0.5)  # the third reply's line on stderr
    answering.send_signal(signal.SIGINT)
    code, _, err = finish(answering)
    assert code == 0
    refused = [line for line in err.splitlines() if "(--queue 2)" in line]
    assert refused == [(f"iotnotify: warning: message on {topic}/rpc not answered: 2 requests are waiting already "
                       "(--queue 2)")] * 3
    assert err.count(f"answered a request on {topic}/rpc") == 3


def test_qos_1_requests_beyond_the_queue_are_held_back_by_the_broker_and_all_answered(fake_endpoint, tmp_path):
    """Receive Maximum (queue + parallel = 2) in CONNECT, and acknowledgement once answered: the
    broker (Mosquitto of the test's own, its log on) holds the third request back until the first is
    acknowledged, which is after CMD answered it; none is refused, none is lost."""
    with broker_behind_front(tmp_path / "broker") as (broker, wss, ca):
        fake_endpoint.answer(body=tutorial_keys(port=wss))
        user = Cli({**user_env(tmp_path), "IOTNOTIFY_ENDPOINT": fake_endpoint.url, "IOTNOTIFY_CA_FILE": ca})
        replies = mosquitto_subscriber(broker.port, "replies", "-C", "4")
        answering = responder(user, tmp_path, "rpc", "--queue", "1", "--", "sh", "-c", "sleep 0.5; cat")
        subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-V", "mqttv5", "-q", "1", "-t", "rpc", "-l",
                        "-D", "publish", "response-topic", "replies"], input=b"a\nb\nc\nd\n", check=True, timeout=20)
        out, _ = replies.communicate(timeout=30)
        answering.send_signal(signal.SIGINT)
        code, _, err = finish(answering)
        log = broker.log_file.read_text().splitlines()
    assert sorted(line for line in out.decode().splitlines() if line in ("a", "b", "c", "d")) == ["a", "b", "c", "d"]
    assert code == 0 and "not answered" not in err and err.count("answered a request") == 4
    sent = [n for n, line in enumerate(log) if "Sending PUBLISH to iotnotify-" in line]
    acked = [n for n, line in enumerate(log) if "Received PUBACK from iotnotify-" in line]
    assert len(sent) == 4 and acked
    assert sent[2] > acked[0]  # the third waited at the broker for the first's acknowledgement


def test_ctrl_c_says_how_many_requests_were_waiting(cli, tmp_path, topic):
    started = tmp_path / "started"
    answering = responder(cli, tmp_path, f"{topic}/rpc", "--", "sh", "-c", f"touch {started}; sleep 1; cat")
    sent = cli.run("send", f"{topic}/rpc", "-l", "--response-topic", f"{topic}/reply", input="a\nb\nc\n")
    assert sent.returncode == 0
    wait_for(started.exists, 10, "the first request's command")
    answering.send_signal(signal.SIGINT)
    code, _, err = finish(answering)
    assert code == 0
    assert err.count(f"answered a request on {topic}/rpc") == 1  # the one under way is finished first
    assert err.splitlines()[-1] == "iotnotify: warning: 2 requests waiting were not answered"


@pytest.mark.parametrize("flags", [["--command-timeout", "nan"], ["--command-timeout", "inf"],
                                   ["--command-timeout", "-1"], ["--queue", "0"]])
def test_respond_refuses_numbers_that_cannot_work(cli, topic, flags):
    result = cli.run("respond", f"{topic}/rpc", *flags, "--", "cat")
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_the_topic_in_a_warning_is_escaped(cli, tmp_path, topic):
    answering = responder(cli, tmp_path, f"{topic}/+", "-C", "1", "--", "cat")
    assert cli.run("send", f"{topic}/\u202eevil", "x", "--qos", "0").returncode == 0  # no response topic
    assert cli.run("send", f"{topic}/rpc", "x", "--qos", "0", "--response-topic", f"{topic}/reply").returncode == 0
    _, _, err = finish(answering)
    assert f"message on {topic}/\\u202eevil not answered: it has no response topic" in err
    assert "\u202e" not in err


def test_a_request_whose_reply_ended_the_connection_is_not_answered_again(stack, cli, fake_endpoint, tmp_path, topic):
    """With keys that do not list their topics the broker decides, and ends the connection for a reply
    it refuses (QoS 0). Sent again (as a persistent session would, for ever), it is not answered again."""
    from tests.test_hostile import keys_that_state_nothing

    fake_endpoint.answer(body=keys_that_state_nothing(stack))
    stripped = Cli({**cli.env, "IOTNOTIFY_ENDPOINT": fake_endpoint.url, "IOTNOTIFY_NO_CACHE": "1"})
    answering = responder(stripped, tmp_path, f"{topic}/rpc", "--reconnect-delay", "0.2,1", "--", "cat")
    poison = ["send", f"{topic}/rpc", "poison", "--qos", "0", "--response-topic", "elsewhere/x",
              "--correlation-data", "c-1"]
    assert cli.run(*poison).returncode == 0
    time.sleep(2)  # the broker ends the connection; respond connects again
    assert cli.run(*poison).returncode == 0
    assert request_json(cli, topic, "fine")["payload"] == "fine"
    answering.send_signal(signal.SIGINT)
    code, _, err = finish(answering)
    assert code == 0
    assert "closed the connection: 0x87 not authorized to publish to 'elsewhere/x'" in err
    assert (f"request on {topic}/rpc: reply not sent: the broker ended the connection while its reply went out the "
            "last time: not answered again") in err
