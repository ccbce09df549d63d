"""`wait FILTER --from A,B,C` (issue 31, item 2): one message from each named sender, not a count;
senders named by `send --sender` (said) or by the key that signed (--verify: proven)."""

import json
import time

import pytest

from iotnotify.messages import Message
from iotnotify.properties import Properties
from iotnotify.quorum import Quorum
from tests.helpers import run_in_process, user_env
from tests.test_request_respond import finish
from tests.test_signing import NO_BROKER, keys


def said_by(name: str | None, payload: bytes = b"x") -> Message:
    props = Properties(user_properties=(("iotnotify-sender", name),)) if name is not None else None
    return Message("t", payload, properties=props)


def test_a_chatty_or_duplicated_sender_is_one():
    quorum = Quorum(["a", "b", "c"])
    taken = list(quorum.arrivals(iter([said_by("a"), said_by("a"), said_by("a"), said_by(None), said_by("x"),
                                       said_by("c")])))
    assert [quorum.sender_of(m) for m in taken] == ["a", "c"]
    assert (quorum.done, quorum.missing) == (False, ["b"])
    assert list(quorum.arrivals(iter([said_by("b"), said_by("b")]))) and quorum.done


def test_with_verify_the_signer_counts_not_what_the_message_says():
    quorum = Quorum(["a"], by_signer=True)
    assert not quorum.take(said_by("a"))
    signed = said_by(None)
    signed.signer = "a"
    assert quorum.take(signed) and quorum.done


@pytest.mark.parametrize("args, said", [
    (["wait", "t", "--from", ""], "an empty name"),
    (["wait", "t", "--from", "a,,b"], "an empty name"),
    (["wait", "t"], "Missing option '--from'"),
    (["wait", "t", "--from", "a", "--protocol", "3.1.1"], "wait needs MQTT 5"),
    (["send", "t", "x", "--sender", ""], "--sender needs a name"),
    (["send", "t", "x", "--sender", "a", "--protocol", "3.1.1"], "--sender needs MQTT 5"),
])
def test_what_wait_and_sender_refuse(tmp_path, args, said):
    done = run_in_process(args, {**user_env(tmp_path), **NO_BROKER})
    assert done.returncode == 2 and said in done.stderr, done.stderr


def test_wait_exits_once_each_named_sender_came(cli, tmp_path, topic):
    waiting = cli.ready(tmp_path, "wait", f"{topic}/#", "--from", "web1,web2", "--from", "web3", "-W", "30")
    for host, text in [("web1", "one"), ("web1", "one again"), ("web2", "two"), ("other", "no")]:
        assert cli.run("send", f"{topic}/{host}", text, "--sender", host).returncode == 0
    assert cli.run("send", f"{topic}/x", "unnamed").returncode == 0
    time.sleep(0.5)
    assert waiting.poll() is None  # web3 has not come: two from web1 do not make three
    assert cli.run("send", f"{topic}/web3", "three", env={"IOTNOTIFY_SENDER": "web3"}).returncode == 0
    assert finish(waiting)[:2] == (0, "one\ntwo\nthree\n")


def test_wait_names_the_senders_still_missing_at_the_timeout(cli, tmp_path, topic):
    waiting = cli.ready(tmp_path, "wait", topic, "--from", "a,b,c", "-W", "3", "--json")
    assert cli.run("send", topic, "from b", "--sender", "b").returncode == 0
    code, out, err = finish(waiting)
    assert code == 7 and json.loads(out)["user_properties"][0] == ["iotnotify-sender", "b"]
    assert err.strip().splitlines()[-1] == "iotnotify: error: 1 sender of 3 came within 3 s; missing a, c"


def test_wait_verify_counts_only_senders_whose_keys_signed(cli, tmp_path, topic):
    trusted = keys(tmp_path, "db1", "db2")
    waiting = cli.ready(tmp_path, "wait", topic, "--from", "db1,db2", "--verify", str(trusted), "-W", "30",
                     "--format", "{signed_by}")
    assert cli.run("send", topic, "done", "--sender", "db2").returncode == 0  # says db2, proves nothing
    assert cli.run("send", topic, "done", "--sign", str(tmp_path / "db1")).returncode == 0
    time.sleep(0.5)
    assert waiting.poll() is None
    assert cli.run("send", topic, "done", "--sign", str(tmp_path / "db2")).returncode == 0
    code, out, err = finish(waiting)
    assert (code, out) == (0, "db1\ndb2\n"), err
    assert "1 message refused by --verify (1 not signed)" in err
