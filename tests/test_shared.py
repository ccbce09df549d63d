"""Shared subscriptions ($share/GROUP/FILTER) under AWS's rules: the keys' session policy allows
them for their topics, the broker gives each message to one member of a group, and `subscribe
--connections N` / `--share`, `respond --share` use them (AWS IoT Core delivers at most 100
messages a second to one connection)."""

import signal

import pytest

from tests.helpers import wait_for
from tests.test_request_respond import finish, responder


def test_subscribe_over_connections_gets_each_message_once(cli, tmp_path, topic):
    """Three connections in one group: 30 messages arrive once each (three plain subscriptions would
    bring each three times, and -C 30 would stop at duplicates)."""
    sub = cli.subscriber(tmp_path, topic, "--connections", "3", "-C", "30", "-W", "30")
    assert cli.run("send", "-l", topic, input="".join(f"{i}\n" for i in range(30))).returncode == 0
    out, err = sub.communicate(timeout=60)
    assert sub.returncode == 0, err
    assert sorted(int(line) for line in out.split()) == list(range(30))


@pytest.mark.slow
def test_four_connections_take_four_times_what_one_connection_may_get(cli, tmp_path, topic):
    """600 messages at about 400 a second: one connection would lose some to AWS's outbound
    throttle (100 a second, a burst of 100), four connections sharing the filter lose none."""
    sub = cli.subscriber(tmp_path, topic, "--connections", "4", "-q", "1", "-C", "600", "-W", "60")
    sent = cli.run("send", "-l", "-q", "1", "--connections", "4", topic, input="".join(f"{i}\n" for i in range(600)))
    assert sent.returncode == 0, sent.stderr
    out, err = sub.communicate(timeout=90)
    assert sub.returncode == 0, err
    assert sorted(int(line) for line in out.split()) == list(range(600))  # none discarded (the warning at 90 a
    # second may come on a loaded machine, where deliveries bunch up: what counts is that all arrived)


def test_responders_sharing_a_group_run_the_command_once_per_request(cli, tmp_path, topic):
    """`respond --share GROUP` on two hosts (here two processes): each request is answered by one
    of them, so the command runs once per request, not twice."""
    runs = tmp_path / "runs"
    command = ["--", "sh", "-c", f"cat >> {runs}; echo >> {runs}; printf done"]
    responders = [responder(cli, tmp_path, f"{topic}/rpc", "--share", "runners", "--quiet", *command) for _ in range(2)]
    try:
        for i in range(6):
            result = cli.run("request", f"{topic}/rpc", f"job{i}", "--response-topic", f"{topic}/reply/{i}")
            assert (result.returncode, result.stdout) == (0, "done\n"), result.stderr
        wait_for(lambda: runs.read_text().count("job") >= 6, 10, "six runs")
    finally:
        for proc in responders:
            proc.send_signal(signal.SIGINT)
            finish(proc)
    assert sorted(runs.read_text().split()) == [f"job{i}" for i in range(6)]


def test_a_shared_subscription_outside_the_keys_topics_is_refused(cli, topic):
    result = cli.run("subscribe", "--share", "g", "other/x", "-W", "2")
    assert result.returncode == 10, result.stderr  # refused: README's exit codes
    assert "may not subscribe to '$share/g/other/x'" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--share", "a/b"], "share name 'a/b': it must be 1 to 128 characters, without '/', '+' or '#'"),
    (["--connections", "2", "--retained-only"], "--retained-only: shared subscriptions get no retained messages"),
    (["--share", "x" * 129], "it must be 1 to 128 characters"),
])
def test_bad_share_options_are_usage_errors(cli, topic, args, message):
    result = cli.run("subscribe", topic, *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_keys_without_shared_subscriptions_are_refused_them_before_anything_is_sent():
    """An endpoint with IOTNOTIFY_SHARED_SUBSCRIPTIONS=false says so in its answer
    ("sharedSubscriptions": false): the client refuses --share and $share/ filters up front."""
    from iotnotify.keys.allowance import Allowance
    from iotnotify.keys.model import parse_keys

    answer = {"iotEndpoint": "abc-ats.iot.eu-west-1.amazonaws.com", "region": "eu-west-1", "accessKey": "ASIAX",
              "secretKey": "s", "sessionToken": "t", "topics": ["alerts/*"], "clientId": "c1"}
    allowed = Allowance.of(parse_keys(answer))
    refused = Allowance.of(parse_keys({**answer, "sharedSubscriptions": False}))
    assert allowed is not None and allowed.may_subscribe("$share/g/alerts/#")
    assert refused is not None and not refused.may_subscribe("$share/g/alerts/#") and refused.may_subscribe("alerts/#")
    assert refused.describe().endswith("; no shared subscriptions")


def test_an_empty_share_name_is_a_usage_error(cli, topic):
    result = cli.run("subscribe", topic, "--share", "")
    assert result.returncode == 2 and "share name ''" in result.stderr, result.stderr
