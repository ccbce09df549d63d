"""`iotnotify ping`: the health check, against the local stack with AWS's rules (and a fake endpoint
for the failures before the broker)."""

import json
import re

import pytest

from iotnotify.ping import PingReport, percentile
from tests.helpers import Cli, free_port, tutorial_keys, user_env


def test_ping_times_the_keys_the_connection_and_each_round_trip(cli):
    result = cli.run("ping", "-c", "3", "--interval", "0.05")
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"PING 127\.0\.0\.1:\d+ on test/iotnotify-ping-[0-9a-f]{8}", lines[0])  # under test/*
    assert re.fullmatch(r"keys +\d+\.\d ms \((cached|fetched)\)", lines[1])
    assert re.fullmatch(r"connect +\d+\.\d ms", lines[2]) and re.fullmatch(r"subscribe +\d+\.\d ms", lines[3])
    assert [re.fullmatch(r"reply (\d): \d+\.\d ms", line).group(1) for line in lines[4:7]] == ["1", "2", "3"]
    assert re.fullmatch(r"3 sent, 3 received; round trip min/p50/p99/max = [\d.]+/[\d.]+/[\d.]+/[\d.]+ ms", lines[7])
    assert len(lines) == 8


def test_ping_json_for_monitoring_and_the_second_uses_cached_keys(cli):
    cli.run("keys")  # cached now
    result = cli.run("ping", "-c", "4", "--interval", "0", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["sent"], report["received"], report["keys_cached"]) == (4, 4, True)
    assert report["min_ms"] <= report["p50_ms"] <= report["p99_ms"] <= report["max_ms"]
    assert len(report["round_trips_ms"]) == 4 and report["connect_ms"] > 0
    assert report["topic"].startswith("test/iotnotify-ping-")


def test_pings_that_do_not_come_back_in_time_exit_7(cli):
    result = cli.run("ping", "-c", "2", "--interval", "0", "-W", "0.0001", "--qos", "0")  # no round trip is that quick
    assert result.returncode == 7
    assert "reply 1: no answer within 0.0001 s" in result.stdout
    assert "2 sent, 0 received; round trip min/p50/p99/max = - ms" in result.stdout
    assert result.stderr == "iotnotify: error: 2 of 2 pings got no answer within 0.0001 s\n"


def test_a_topic_the_keys_do_not_allow_is_exit_2(cli):
    result = cli.run("ping", "--topic", "elsewhere/x")
    assert result.returncode == 2
    assert result.stderr.startswith("iotnotify: error: --topic elsewhere/x: ping publishes to it and subscribes "
                                    "to it, and the keys allow topics test/*")


def test_the_usual_codes_before_the_broker(fake_endpoint, tmp_path):
    fake_endpoint.answer(status=500, body=b"boom")
    result = Cli(user_env(tmp_path)).run("--endpoint", fake_endpoint.url, "ping")
    assert result.returncode == 4 and result.stderr.count("\n") == 1
    port = free_port()
    fake_endpoint.answer(body=tutorial_keys(port=port))
    result = Cli(user_env(tmp_path)).run("--endpoint", fake_endpoint.url, "ping", "--no-cache")
    assert (result.returncode, result.stderr) == (5, (f"iotnotify: error: broker 127.0.0.1:{port} is unreachable "
                                                     "(AWS_IO_SOCKET_CONNECTION_REFUSED)\n"))


@pytest.mark.parametrize("values, p, expected", [([1.0], 99, 1.0), ([1.0, 2.0], 50, 1.0),
                                                 ([float(n) for n in range(1, 101)], 99, 99.0),
                                                 ([float(n) for n in range(1, 11)], 99, 10.0)])
def test_percentiles_are_nearest_rank(values, p, expected):
    assert percentile(values, p) == expected


def test_a_report_without_answers_has_no_summary():
    report = PingReport("h:1", "t", round_trips=[None, None])
    assert report.summary() == {} and report.record()["received"] == 0


def test_ping_on_a_topic_given(cli):
    result = cli.run("ping", "-c", "1", "--topic", "demo/health", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["topic"] == "demo/health"
