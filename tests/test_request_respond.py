"""`request` and `respond` (request/response over MQTT 5) against the local stack with AWS's rules,
and with peers (mosquitto_sub/_pub on the plain listener) as the other side."""

import json
import signal
import subprocess

import pytest

from tests.helpers import IOTNOTIFY, Cli, mosquitto_subscriber, wait_for
from tests.test_aws_rules import ruled, ruled_stack  # noqa: F401 - fixtures: a stack with private topics


def finish(proc, timeout=30):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(), err.decode()


def responder(cli: Cli, tmp_path, *args: str) -> subprocess.Popen[bytes]:
    """`iotnotify respond ARGS`, returned once it is subscribed."""
    ready = tmp_path / f"responder-{len(list(tmp_path.iterdir()))}.ready"
    proc = subprocess.Popen([*IOTNOTIFY, "respond", "--ready-file", str(ready), *args], env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    wait_for(lambda: ready.exists() or proc.poll() is not None, 20, "the responder subscribed")
    assert proc.poll() is None, proc.communicate()
    return proc


def test_a_request_gets_the_reply_of_the_command(cli, tmp_path, topic):
    answering = responder(cli, tmp_path, f"{topic}/rpc", "-C", "1", "--", "tr", "a-z", "A-Z")
    result = cli.run("request", f"{topic}/rpc", "hello", "--response-topic", f"{topic}/reply", "-v")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{topic}/reply HELLO\n", "")
    code, _, err = finish(answering)
    assert code == 0
    assert err == f"answered a request on {topic}/rpc\n"  # "subscribed" is for a terminal only


def test_a_failing_command_is_reported_and_answered_with_an_error_property(cli, tmp_path, topic):
    answering = responder(cli, tmp_path, f"{topic}/rpc", "-C", "1", "--", "sh", "-c",
                          "cat; echo 'no such job' >&2; exit 3")
    result = cli.run("request", f"{topic}/rpc", "job-7", "--response-topic", f"{topic}/reply", "--json")
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["payload"] == "job-7"  # what the command printed all the same
    assert reply["user_properties"] == [["error", "exit 3: no such job"]]
    _, _, err = finish(answering)
    expected = f"iotnotify: warning: request on {topic}/rpc: sh exited 3: no such job (answered with a user property"
    assert f"{expected} `error`)" in err


def test_a_command_over_its_time_is_stopped_and_answered_with_an_error(cli, tmp_path, topic):
    answering = responder(cli, tmp_path, f"{topic}/rpc", "-C", "1", "--command-timeout", "0.5", "--", "sleep", "5")
    result = cli.run("request", f"{topic}/rpc", "x", "--response-topic", f"{topic}/reply", "--json")
    assert json.loads(result.stdout)["user_properties"] == [["error", "timeout: did not finish within 0.5 s"]]
    assert "sleep timed out" in finish(answering)[2]


@pytest.mark.parametrize("parallel, order", [("1", "start end start end"), ("2", "start start end end")])
def test_one_request_at_a_time_unless_parallel(cli, tmp_path, topic, parallel, order):
    log = tmp_path / "log"
    answering = responder(cli, tmp_path, f"{topic}/rpc", "-C", "2", "--parallel", parallel, "--", "sh", "-c",
                          f"echo start >> {log}; sleep 1; echo end >> {log}")
    requests = [cli.start("request", f"{topic}/rpc", str(n), "--response-topic", f"{topic}/reply-{n}")
                for n in range(2)]
    assert [finish(r)[0] for r in requests] == [0, 0]
    assert finish(answering)[0] == 0
    assert log.read_text().split() == order.split()


def peer_subscriber(port: int, topic: str) -> subprocess.Popen[bytes]:
    """mosquitto_sub (MQTT 5, plain listener) printing `response topic|correlation data|payload` of
    one message, returned once the broker acknowledged its subscription."""
    return mosquitto_subscriber(port, topic, "-V", "5", "-C", "1", "-W", "20", "-F", "%R|%D|%p")


def received_request(peer: subprocess.Popen[bytes]) -> list[str]:
    out, _ = peer.communicate(timeout=30)
    (line,) = [x for x in out.decode().splitlines() if x.count("|") == 2]
    return line.split("|")


def peer_reply(port: int, topic: str, correlation: str, text: str) -> None:
    subprocess.run(["mosquitto_pub", "-V", "5", "-p", str(port), "-h", "127.0.0.1", "-q", "1", "-t", topic,
                    "-m", text, "-D", "publish", "correlation-data", correlation], check=True, timeout=10)


def test_replies_with_other_correlation_data_are_not_ours(cli, stack, topic):
    peer = peer_subscriber(stack.mqtt_port, f"{topic}/rpc")
    request = cli.start("request", f"{topic}/rpc", "q", "--response-topic", f"{topic}/reply", "-W", "20")
    response_topic, correlation, payload = received_request(peer)  # the request subscribed before it published
    assert (response_topic, payload) == (f"{topic}/reply", "q")
    assert len(correlation) == 16  # random, printable
    peer_reply(stack.mqtt_port, response_topic, "theirs", "not for us")
    peer_reply(stack.mqtt_port, response_topic, correlation, "for us")
    assert finish(request)[:2] == (0, "for us\n")


def test_the_default_response_topic_is_the_keys_private_topic(ruled, ruled_stack):  # noqa: F811
    """A backend (with credentials of its own: here on Mosquitto's plain listener) answers a user on
    the private topic no other keys can read."""
    keys = json.loads(ruled.run("keys", "--json").stdout)
    peer = peer_subscriber(ruled_stack.mqtt_port, "test/rpc/private")
    request = ruled.start("request", "test/rpc/private", "what time is it", "-W", "20")
    response_topic, correlation, payload = received_request(peer)
    assert (response_topic, payload) == (keys["privateTopic"], "what time is it")
    peer_reply(ruled_stack.mqtt_port, response_topic, correlation, "noon")
    assert finish(request)[:2] == (0, "noon\n")


def test_a_request_without_a_response_topic_or_a_private_one_is_a_usage_error(cli, topic):
    result = cli.run("request", f"{topic}/rpc", "x")
    assert result.returncode == 2
    assert result.stderr == ("iotnotify: error: --response-topic is needed: the keys offer no private topic to "
                             "receive replies on\n")


def test_no_reply_in_time_exits_7(cli, topic):
    result = cli.run("request", f"{topic}/rpc", "x", "--response-topic", f"{topic}/reply", "-W", "1")
    assert result.returncode == 7
    assert result.stderr == "iotnotify: error: received 0 of 1 replies within 1 s\n"


@pytest.mark.parametrize("command", ["request", "respond"])
def test_mqtt_3_1_1_cannot_carry_requests(cli, topic, command):
    args = [topic, "x", "--response-topic", "t/r"] if command == "request" else [topic, "--", "cat"]
    result = cli.run(command, "--protocol", "3.1.1", *args, timeout=20)
    assert result.returncode == 2
    assert "needs MQTT 5" in result.stderr


def test_respond_needs_a_command(cli, topic):
    result = cli.run("respond", topic)
    assert result.returncode == 2
    assert "give the command after --" in result.stderr


def test_a_message_with_no_response_topic_is_not_answered_and_ctrl_c_stops(cli, tmp_path, topic):
    answering = responder(cli, tmp_path, f"{topic}/rpc", "--", "cat")
    assert cli.run("send", f"{topic}/rpc", "no reply wanted").returncode == 0
    answered = cli.run("request", f"{topic}/rpc", "ping", "--response-topic", f"{topic}/reply")
    assert answered.stdout == "ping\n"  # the message before it was seen by now (one connection keeps order)
    answering.send_signal(signal.SIGINT)
    code, _, err = finish(answering)
    assert code == 0
    assert f"iotnotify: warning: message on {topic}/rpc not answered: it has no response topic" in err
