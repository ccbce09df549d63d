"""The parts that make sending and receiving fast, each checked for what it does (the speed itself
is measured by bench/, not here): `send` keeping at most WINDOW messages unacknowledged, no package
metadata read, no interpreter finalization; the shortcuts into awscrt are tests/test_crt.py's."""

import subprocess

from iotnotify.send import WINDOW
from tests.helpers import IOTNOTIFY, imports_of, spy_on_exit


def test_send_of_many_windows_arrives_whole_and_in_order(fast_cli, tmp_path):
    """Reading pauses while WINDOW messages wait (test_reconnect shows where it stops); with the
    broker answering, everything arrives, in order. (A permissive stack: at AWS's 100 messages a
    second acknowledgements come back faster than messages go, and the window never fills.)"""
    cli = fast_cli
    count = WINDOW * 5
    sub = cli.subscriber(tmp_path, "test/window", "-C", str(count), "-W", "60")
    lines = b"".join(b"%d\n" % i for i in range(count))
    result = subprocess.run([*IOTNOTIFY, "send", "-l", "test/window"], input=lines, env=cli.env, capture_output=True)
    assert result.returncode == 0, result.stderr
    out, _ = sub.communicate(timeout=60)
    assert out == lines


def test_a_cold_send_reads_no_package_metadata(cli, topic):
    """awsiotsdk's metrics (its version in CONNECT's username) import importlib.metadata and read
    the package's metadata on every connection: off, and a send with cached keys imports neither."""
    assert cli.run("keys").returncode == 0  # cached: fetching them would import http.client (and email)
    imported = imports_of(cli.env, "send", "--no-agent", "--via", "mqtt", topic, "hi")
    assert "awscrt.mqtt5" in imported
    assert not {"importlib.metadata", "email"} & imported


SPY_EXIT = spy_on_exit("quick exit {code}")


def test_send_ends_its_process_without_finalization_once_disconnected(cli, topic):
    """`send` ends with os._exit once its connections are closed (the interpreter's finalization
    cost 40-50 ms of a cold send), with its exit code and its output flushed."""
    python = IOTNOTIFY[0]
    done = subprocess.run([python, "-c", SPY_EXIT, "send", "--no-agent", "-l", topic], input=b"a\nb\n" * 100,
                          capture_output=True, env=cli.env, timeout=60)
    assert (done.returncode, done.stderr) == (0, b"quick exit 0\n")
    refused = subprocess.run([python, "-c", SPY_EXIT, "send", "--no-agent", "test/a/#", "x"],
                             capture_output=True, env=cli.env, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        b"iotnotify: error: topic 'test/a/#' contains a wildcard ('+' or '#'): publish needs an exact topic",
        b"quick exit 2"]
    keys = subprocess.run([python, "-c", SPY_EXIT, "keys"], capture_output=True, env=cli.env, timeout=60)
    assert keys.returncode == 0 and b"quick exit" not in keys.stderr  # other commands end as usual
