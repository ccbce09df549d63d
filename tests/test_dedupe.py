"""Message ids and --dedupe: `send` gives each message an `iotnotify-id` (MQTT 5), and `subscribe`,
`on` and `respond --dedupe WINDOW` drop a message whose id came within WINDOW. Against the local
stack with AWS's rules; the duplicates are made as a broker or a resend would deliver them: the
same record (same id) published twice."""

import json
import re
import signal

import pytest

from iotnotify.dedupe import Dedupe
from iotnotify.messages import Message
from iotnotify.properties import Properties
from tests.helpers import run_in_process, user_env, wait_for
from tests.test_on import on
from tests.test_request_respond import finish, responder


def ids_of(out: str) -> list[str | None]:
    found = []
    for line in out.splitlines():
        pairs = dict(json.loads(line).get("user_properties", []))
        found.append(pairs.get("iotnotify-id"))
    return found


def test_send_gives_each_message_an_id_of_its_own(cli, tmp_path, topic):
    subscriber = cli.subscriber(tmp_path, topic, "--json", "-C", "4")
    assert cli.run("send", topic, "-l", input="a\nb\nc\n").returncode == 0
    assert cli.run("send", topic, "d", "--via", "mqtt").returncode == 0
    ids = ids_of(finish(subscriber)[1])
    assert all(re.fullmatch("[0-9a-f]{32}", i or "") for i in ids) and len(set(ids)) == 4


@pytest.mark.parametrize("flags", [["--no-id"], ["--protocol", "3.1.1"], ["--via", "https"]])
def test_no_id_without_mqtt5_or_when_asked(cli, tmp_path, topic, flags):
    subscriber = cli.subscriber(tmp_path, topic, "--json", "-C", "1")
    assert cli.run("send", topic, "x", *flags).returncode == 0
    assert ids_of(finish(subscriber)[1]) == [None]


def records(topic: str, *ids: str) -> str:
    return "".join(json.dumps({"topic": topic, "payload": f"n{n}", "user_properties": [["iotnotify-id", i]],
                               "response_topic": f"{topic}/reply"}) + "\n" for n, i in enumerate(ids))


def test_a_replayed_record_keeps_its_id(cli, tmp_path, topic):
    subscriber = cli.subscriber(tmp_path, topic, "--json", "-C", "1")
    assert cli.run("send", "--records", input=records(topic, "abc")).returncode == 0
    assert ids_of(finish(subscriber)[1]) == ["abc"]


@pytest.mark.parametrize("dedupe", [True, False])
def test_subscribe_dedupe_drops_a_message_whose_id_came_already(cli, tmp_path, topic, dedupe):
    flags = ["--dedupe", "10m", "-v"] if dedupe else []
    subscriber = cli.subscriber(tmp_path, topic, "-C", "3", "-W", "5", *flags)
    assert cli.run("send", "--records", input=records(topic, "one", "one", "two", "one")).returncode == 0
    code, out, err = finish(subscriber)
    if not dedupe:
        assert (code, out) == (0, "n0\nn1\nn2\n")
        return
    assert (code, out) == (7, f"{topic} n0\n{topic} n2\n")  # -W: only two of -C 3 came
    assert err.splitlines()[:2] == [f"iotnotify: dropped a duplicate on {topic} (iotnotify-id one)"] * 2


def test_on_dedupe_runs_the_command_once_per_id(cli, tmp_path, topic):
    running = on(cli, tmp_path, topic, "-C", "2", "--dedupe", "1h", "--", "sh", "-c", "cat; echo")
    assert cli.run("send", "--records", input=records(topic, "a", "a", "b")).returncode == 0
    code, out, err = finish(running)
    assert (code, out, err) == (0, "n0\nn2\n", "")  # without -v the drop is not said


def test_respond_dedupe_answers_a_request_once(cli, tmp_path, topic):
    log = tmp_path / "log"
    answering = responder(cli, tmp_path, topic, "--dedupe", "10m", "--", "sh", "-c", f"cat >> {log}; echo >> {log}")
    assert cli.run("send", "--records", input=records(topic, "r1", "r1", "r2")).returncode == 0
    wait_for(lambda: log.exists() and log.read_text().count("\n") >= 2, 20, "two requests answered")
    answering.send_signal(signal.SIGINT)
    code, _, err = finish(answering)
    assert code == 0
    assert log.read_text() == "n0\nn2\n"
    assert f"iotnotify: dropped a duplicate on {topic} (iotnotify-id r1)" in err


def test_dedupe_must_be_a_positive_duration(tmp_path):
    result = run_in_process(["subscribe", "t", "--dedupe", "0"], user_env(tmp_path))
    assert result.returncode == 2
    assert "'0' is not a duration such as 90s, 10m, 1h" in result.stderr


def message(given: str) -> Message:
    return Message("t", b"", properties=Properties(user_properties=(("iotnotify-id", given),)))


def test_an_id_is_forgotten_after_the_window():
    now = [0.0]
    dedupe = Dedupe(10, clock=lambda: now[0])
    assert dedupe.admits(message("x")) and not dedupe.admits(message("x"))
    now[0] = 9.9
    assert not dedupe.admits(message("x"))  # the window runs from the first
    now[0] = 10.0
    assert dedupe.admits(message("x"))
    assert dedupe.admits(Message("t", b"no id")) and dedupe.admits(Message("t", b"no id"))
    assert dedupe.dropped == 2


def test_memory_is_bounded_whatever_ids_peers_send():
    dedupe = Dedupe(3600, max_ids=1000)
    for n in range(5000):
        assert dedupe.admits(message(f"{n:x}" * 10_000))  # long ids: each kept as a 16-byte digest
    assert len(dedupe) == 1000
    assert dedupe.admits(message(f"{0:x}" * 10_000))  # the oldest forgotten first
    assert not dedupe.admits(message(f"{4999:x}" * 10_000))


def test_through_the_agent_each_message_gets_an_id_unless_no_id(user, tmp_path, topic):
    from tests.test_agent import start_agent, status

    start_agent(user)
    subscriber = user.subscriber(tmp_path, topic, "--json", "-C", "3")
    for flags in ([], [], ["--no-id"]):
        assert user.run("send", topic, "x", *flags).returncode == 0
    assert status(user)["sends"] == "3"  # all three through the agent
    first, second, none = ids_of(finish(subscriber)[1])
    assert first and second and first != second and none is None
