"""bench/compare.py's own machinery (the benchmark itself is not run by the tests): a failing client
costs its cell, not the table, and each wss client start gets a URL signed then; the subscribe
rows' flood (bench/flood.py) and subscribe.py's per-run lines."""

import importlib
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import free_port, mosquitto_subscriber

BENCH = Path(__file__).resolve().parent.parent / "bench"


def bench_module(name: str) -> ModuleType:
    """bench/NAME.py, imported as bench/run runs it (bench/ on the path, its modules by bare name)."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def compare():
    return bench_module("compare")


def test_a_failing_cell_is_tried_twice_then_marked(compare, capsys):
    calls = []

    def measure() -> float:
        calls.append(1)
        raise RuntimeError("mqtt did not subscribe")

    assert compare.cell(measure, "MQTT.js subscribe") == "failed"
    assert len(calls) == 2
    assert "MQTT.js subscribe failed (attempt 2): mqtt did not subscribe" in capsys.readouterr().err
    flaky = iter([RuntimeError("once"), 42.0])

    def once() -> float:
        item = next(flaky)
        if isinstance(item, Exception):
            raise item
        return item

    assert compare.cell(once, "x") == 42.0


def test_each_client_start_gets_a_url_signed_then(compare, tmp_path):
    bench = compare.Bench(tmp_path, 10)
    bench.keys = {"accessKey": "ASIAEXAMPLE", "secretKey": "s", "sessionToken": "t", "region": "local",
                  "expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))}
    first = bench.url
    time.sleep(1.1)
    second = bench.url
    date = lambda url: url.split("X-Amz-Date=")[1].split("&")[0]  # noqa: E731
    assert date(first) != date(second)  # signed at each start, not once for the whole run


def test_the_table_prints_a_failed_cell_and_goes_on(compare, capsys):
    compare.print_table([("subscribe to a pipe", "msg/s", {compare.OURS: 1000.0, compare.MQTTJS: "failed"}),
                         ("cold send, QoS 1", "s", {compare.OURS: "failed"})])
    out = capsys.readouterr().out
    assert "failed" in out and "that client failed the scenario twice" in out


def test_cpu_per_message_is_the_clients_own_and_lower_is_ahead(compare, capsys):
    """The subscribe row's CPU per message comes from /proc for the subscriber's pid; in the table a
    client that spends twice iotnotify's CPU is 2.00x (lower is better, as for seconds)."""
    import os

    before = compare.cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    assert 0.03 <= compare.cpu_seconds(os.getpid()) - before < 5
    compare.print_table([("  ... its CPU per message", "us", {compare.OURS: 10.0, compare.MQTTJS: 20.0,
                                                               compare.MOSQUITTO: 5.0})])
    out = capsys.readouterr().out
    assert "10.0" in out and "20.0 (2.00x)" in out and "5.0 (0.50x)" in out
    assert "CPU per message: the subscriber's own CPU time" in out


@pytest.fixture(scope="module")
def flood():
    return bench_module("flood")


def test_the_flood_reaches_a_subscriber_whole_and_in_order(flood, stack, topic):
    """The subscribe rows' publisher, a stream of PUBLISH packets it encodes itself, against the
    real Mosquitto: every payload arrives, in order, as mosquitto_sub prints it."""
    payloads = [b'{"n": %d, "v": "%s"}' % (i, b"x" * (i % 200)) for i in range(1000)]  # lengths over 127: 2-byte length
    sub = mosquitto_subscriber(stack.mqtt_port, topic, "-C", "1000")
    try:
        sender = flood.Flood(stack.mqtt_port, flood.encode(topic, payloads))
        sender.start()
        sender.join(30)
        sender.check()
        out, _ = sub.communicate(timeout=30)
    finally:
        sub.kill()
        sub.wait()
    assert [line for line in out.splitlines() if line.startswith(b'{"n"')] == payloads


def test_a_flood_that_cannot_connect_says_so(flood):
    sender = flood.Flood(free_port(), flood.encode("t", [b"x"]))
    sender.start()
    sender.join(30)
    with pytest.raises(RuntimeError, match="the flood failed"):
        sender.check()


def test_subscribe_py_prints_each_runs_ratios(compare, capsys, monkeypatch):
    """bench/subscribe.py's stability lines: each run's ratio (the subscribers took turns in it),
    the lowest named; a client that failed a run leaves that pairing out rather than misaligned."""
    subscribe = bench_module("subscribe")
    monkeypatch.setattr(compare, "RAW", {
        "subscribe to a pipe": {compare.OURS: [150.0, 120.0], compare.MQTTJS: [100.0, 100.0],
                                compare.MOSQUITTO: [100.0]},
        "subscribe --json to a pipe": {compare.OURS + " --json": [135.0, 96.0]}})
    subscribe.print_per_run(2)
    out = capsys.readouterr().out.splitlines()
    assert f"per run, iotnotify / {compare.MQTTJS}: 1.50x 1.20x (lowest 1.20x)" in out
    assert f"per run, iotnotify / {compare.MOSQUITTO}: a run failed, no pairing" in out
    assert "per run, iotnotify --json / iotnotify: 0.90x 0.80x (lowest 0.80x)" in out


def test_recovery_counts_from_the_networks_return_and_finds_the_lost(tmp_path):
    """bench/recovery.py's outcome: the first arrival after the return, the longest silence, the
    messages never received and those received twice."""
    recovery = bench_module("recovery")
    watched = object.__new__(recovery.Watched)  # its arrivals only: no process to read
    watched.arrivals = [(10.0, 0), (10.05, 1), (16.3, 3), (16.35, 3), (16.4, 4)]
    result = recovery.outcome(watched, 6, back=16.0)
    assert result["recovery"] == pytest.approx(0.3) and result["silence"] == pytest.approx(6.25)
    assert result["lost"] == 2 and result["duplicates"] == 1  # 2 and 5 never came; 3 came twice
