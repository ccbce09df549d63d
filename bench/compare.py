#!/usr/bin/env python3
"""iotnotify against other MQTT clients on the same local broker, in one run; a printed table.

    bench/run [--runs 5] [--messages 100000]

Each row is a scenario, each column a client: medians over --runs runs (seconds, or messages per
second), and each other client's ratio to iotnotify (>1: iotnotify is faster). The local stack is
started here, in this process, on free loopback ports. iotnotify goes through the TLS WebSocket
front with SigV4, as it does against AWS; mosquitto_pub/_sub use Mosquitto's plain TCP listener,
so they do strictly less work (no TLS, no WebSocket, no signing): they are the floor, not a peer.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from iotnotify.local.stack import LocalStack, StackConfig

IOTNOTIFY = str(Path(sys.executable).with_name("iotnotify"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(command: list[str], env: dict[str, str], stdin: bytes | None = None) -> float:
    """Wall time of one run of `command` (which must succeed)."""
    start = time.perf_counter()
    subprocess.run(command, input=stdin, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def median(runs: int, make: callable) -> float:  # type: ignore[valid-type]
    return statistics.median(make() for _ in range(runs))


def receive_rate(command: list[str], env: dict[str, str], flood: list[str], count: int, ready: Path) -> float:
    """Messages per second a subscriber writes to a pipe while `flood` publishes `count` messages."""
    ready.unlink(missing_ok=True)
    sub = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not ready.exists() and time.monotonic() < deadline:  # iotnotify: --ready-file; others: a pause
        time.sleep(0.02)
    start = time.perf_counter()
    subprocess.run(flood, env=env, check=True)
    lines = sum(1 for _ in sub.stdout)  # type: ignore[union-attr]
    elapsed = time.perf_counter() - start
    sub.wait(30)
    if lines < count:
        raise RuntimeError(f"{command[0]} received {lines} of {count}")
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    stack = LocalStack(StackConfig(work / "state", free_port(), free_port(), free_port()))
    stack.start()
    plain = str(stack.config.mqtt_port)
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache"), "IOTNOTIFY_ENDPOINT": stack.endpoint_url,
           "IOTNOTIFY_CA_FILE": str(stack.tls.ca_file)}
    have_mosquitto = shutil.which("mosquitto_pub") is not None
    rows: list[tuple[str, str, float, float | None]] = []  # scenario, unit, iotnotify, mosquitto
    try:
        subprocess.run([IOTNOTIFY, "keys"], env=env, check=True, stdout=subprocess.DEVNULL)  # keys cached
        for label, argv in (("startup: --help", ["--help"]), ("startup: send --help", ["send", "--help"])):
            rows.append((label, "s", median(args.runs, lambda: timed([IOTNOTIFY, *argv], env)), None))
        rows.append(("cold send, QoS 1", "s",
                     median(args.runs, lambda: timed([IOTNOTIFY, "send", "bench/cold", "x"], env)),
                     median(args.runs, lambda: timed(["mosquitto_pub", "-p", plain, "-q", "1", "-t", "bench/cold",
                                                      "-m", "x"], env)) if have_mosquitto else None))
        lines = b"".join(b'{"n": %d, "v": "xxxxxxxxxxxxxxxxxxxx"}\n' % i for i in range(args.messages))
        for qos in ("0", "1"):
            ours = median(args.runs, lambda: timed([IOTNOTIFY, "send", "-l", "--qos", qos, "bench/stream"], env, lines))
            theirs = median(args.runs, lambda: timed(["mosquitto_pub", "-p", plain, "-q", qos, "-l", "-t",
                                                      "bench/stream"], env, lines)) if have_mosquitto else None
            rows.append((f"stream send {args.messages:,} lines, QoS {qos}", "msg/s", args.messages / ours,
                         args.messages / theirs if theirs else None))
        if have_mosquitto:
            ready = work / "ready"
            (work / "flood").write_bytes(lines)
            flood = ["sh", "-c", f"mosquitto_pub -p {plain} -q 0 -l -t bench/flood < {work / 'flood'}"]
            for label, extra in (("subscribe to a pipe", []), ("subscribe --json to a pipe", ["--json"])):
                ours = median(args.runs, lambda: receive_rate(
                    [IOTNOTIFY, "subscribe", "bench/flood", "--qos", "0", "-C", str(args.messages), "--quiet",
                     "--ready-file", str(ready), *extra], env, flood, args.messages, ready))
                theirs = median(args.runs, lambda: receive_rate(
                    ["sh", "-c", f"mosquitto_sub -p {plain} -q 0 -t bench/flood -C {args.messages} & "
                                 f"sleep 0.5; touch {ready}; wait"], env, flood, args.messages, ready))
                rows.append((label, "msg/s", ours, theirs))
    finally:
        stack.stop()
    print(f"iotnotify benchmark, {time.strftime('%Y-%m-%d')}, {platform.node()} ({os.cpu_count()} cores, "
          f"Python {platform.python_version()}), medians of {args.runs} runs")
    print(f"{'scenario':<38} {'unit':>6} {'iotnotify':>11} {'mosquitto*':>11} {'ratio':>6}")
    for scenario, unit, ours, theirs in rows:
        if theirs is None:
            print(f"{scenario:<38} {unit:>6} {ours:>11.3f} {'-':>11} {'-':>6}")
            continue
        ratio = theirs / ours if unit == "s" else ours / theirs  # >1: iotnotify faster
        fmt = ".3f" if unit == "s" else ",.0f"
        print(f"{scenario:<38} {unit:>6} {ours:>11{fmt}} {theirs:>11{fmt}} {ratio:>6.2f}")
    print("* mosquitto_pub/_sub over plain TCP (no TLS, WebSocket or SigV4): a floor, not a peer")


if __name__ == "__main__":
    main()
