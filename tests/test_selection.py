"""--exclude FILTER and --grep REGEX: which messages `subscribe` prints (and `on` runs CMD for:
tests/test_on.py; `tail` shows: tests/test_tail.py), against the local stack with AWS's rules."""

import re
import signal

import pytest

from iotnotify.messages import Message
from iotnotify.selection import Selection
from tests.helpers import run_in_process, user_env
from tests.test_request_respond import finish

SENT = [("debug/a", "error 1"), ("a", "calm"), ("a", "ERROR 2"), ("b/skip", "error 3"), ("b", "fatal 4")]


def send_all(cli, topic):
    for where, payload in SENT:
        assert cli.run("send", f"{topic}/{where}", payload).returncode == 0


def test_subscribe_prints_only_what_exclude_and_grep_let_through(cli, tmp_path, topic):
    subscriber = cli.subscriber(tmp_path, f"{topic}/#", "-v", "-C", "2", "-T", f"{topic}/debug/#",
                                "--exclude", f"{topic}/+/skip", "--grep", "(?i)error|fatal")
    send_all(cli, topic)
    assert finish(subscriber)[:2] == (0, f"{topic}/a ERROR 2\n{topic}/b fatal 4\n")


def test_without_a_count_too(cli, tmp_path, topic):
    """(The path where each message is written by the thread that received it.)"""
    subscriber = cli.subscriber(tmp_path, f"{topic}/#", "-T", f"{topic}/debug/#", "-T", f"{topic}/a")
    send_all(cli, topic)
    assert cli.run("send", f"{topic}/end", "end").returncode == 0
    subscriber.send_signal(signal.SIGINT)
    code, out, _ = finish(subscriber)
    assert (code, out) == (130, "error 3\nfatal 4\nend\n")


@pytest.mark.parametrize("args, error", [
    (["--grep", "(x"], "--grep '(x' is not a valid pattern: missing ), unterminated subpattern at position 0"),
    (["-T", "a/#/b"], "--exclude: filter 'a/#/b': '#' must be a whole level and the last one"),
    (["-T", "$share/g/a/#"], ("--exclude $share/g/a/#: a shared subscription, not a topic filter (give the filter "
                             "after $share/GROUP/)")),
    (["-T", "a\0b"], ("--exclude: filter 'a\\x00b' contains U+0000 (a control character), "
                     "which MQTT brokers refuse")),
])
def test_a_bad_pattern_or_filter_is_one_line_and_exit_2(tmp_path, args, error):
    result = run_in_process(["subscribe", "t", *args], user_env(tmp_path))
    assert (result.returncode, result.stderr) == (2, f"iotnotify: error: {error}\n")


def test_grep_searches_a_payload_that_is_not_utf8_with_each_bad_byte_as_a_replacement_character():
    selection = Selection(grep=re.compile("ok\ufffd$"))
    assert selection.admits(Message("t", b"ok\xff"))
    assert not selection.admits(Message("t", b"no\xff"))


def test_exclude_follows_mqtt_matching():
    selection = Selection(exclude=("a/#", "+/b"))
    assert [selection.admits(Message(topic, b"")) for topic in ("a", "a/x/y", "c/b", "c/b/d", "$aws/b")] == \
        [False, False, False, True, True]  # `#` takes the level above; wildcards never take `$` topics
