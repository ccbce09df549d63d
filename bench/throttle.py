#!/usr/bin/env python3
"""`send -l` against AWS IoT Core's throttle (100 publishes a second per connection), as the local
stack enforces it: messages/s with 1, 2, 4 and 8 connections (`--connections N`), how many arrived,
and how many publishes the stack discarded for rate; and, for comparison, a client that does not
pace itself (awscrt with AWS IoT Core's flow control off, as paho-mqtt or MQTT.js publish). A table,
medians of --runs runs.

    .venv/bin/python bench/throttle.py [--seconds 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from compare import IOTNOTIFY, free_port, user_environment  # noqa: E402

from iotnotify.local.stack import LocalStack, StackConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="messages per run: about this long at the limit")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    throttled: list[int] = []  # publishes the stack discarded, from its log lines ("N publishes over ...")
    stack = LocalStack(StackConfig(work, free_port(), free_port(), free_port(), topics=("bench/*",)),
                       log=lambda line: throttled.append(int(line.split(": ")[-1].split()[0]))
                       if "throttled" in line else None)
    stack.start()
    env = {**user_environment(), "XDG_CACHE_HOME": str(work / "cache"), "IOTNOTIFY_ENDPOINT": stack.endpoint_url,
           "IOTNOTIFY_CA_FILE": str(stack.tls.ca_file)}
    print(f"iotnotify send -l against AWS IoT Core's throttle (the enforcing local stack, {time.strftime('%Y-%m-%d')}), "
          f"medians of {args.runs} runs")
    print(f"{'connections':>11} {'messages':>9} {'msg/s':>8} {'steady msg/s':>13} {'per connection':>15} "
          f"{'arrived':>9} {'discarded':>10}")
    try:
        for connections in (1, 2, 4, 8):
            count = int(args.seconds * 97 * connections)
            rates, steady, arrived, discarded = [], [], [], []
            for run in range(args.runs):
                topic = f"bench/throttle/{connections}/{run}"
                got = receive(stack.config.mqtt_port, topic, count)
                before = len(throttled)
                lines = b"".join(b"%d\n" % i for i in range(count))
                started = time.perf_counter()
                subprocess.run([IOTNOTIFY, "send", "-l", topic, "--connections", str(connections)], input=lines,
                               env=env, check=True)
                rates.append(count / (time.perf_counter() - started))
                received, first, last = got()
                arrived.append(received)
                steady.append((received - 1) / (last - first))
                discarded.append(sum(throttled[before:]))
            rate, flow = statistics.median(rates), statistics.median(steady)
            print(f"{connections:>11} {count:>9,} {rate:>8.1f} {flow:>13.1f} {flow / connections:>15.1f} "
                  f"{min(arrived):>9,} {max(discarded):>10}")
        count = int(args.seconds * 97)
        got = receive(stack.config.mqtt_port, "bench/throttle/unpaced", count)
        before = len(throttled)
        acked = unpaced(env, "bench/throttle/unpaced", count)
        received = got(5)[0]
        time.sleep(1.5)  # the stack notes discarded publishes once a second
        print(f"{'unpaced, 1':>11} {count:>9,} {'-':>8} {'-':>13} {'-':>15} {received:>9,} "
              f"{sum(throttled[before:]):>10,}   ({acked:,} acknowledged)")
    finally:
        stack.stop()
    print("msg/s: from starting `send` (keys cached) to its exit 0 (every message acknowledged), connecting included;")
    print("steady msg/s: between the first and the last message's arrival at a subscriber of the broker's own (what the "
          "connections carry: one wss subscriber would get 100 a second, AWS's outbound rate).")
    print("arrived: the fewest a subscriber received in a run; discarded: the most publishes the stack discarded for rate.")
    print("unpaced: awscrt with AWS IoT Core's flow control off, publishing as fast as it goes (as paho-mqtt or MQTT.js "
          "would): what is over AWS's rate is discarded, unacknowledged.")


def unpaced(env: dict[str, str], topic: str, count: int) -> int:
    """Publish `count` QoS 1 messages on one connection as fast as awscrt goes, with AWS IoT Core's
    flow control off; how many the broker acknowledged within 5 s."""
    import json

    from iotnotify.keys import KeySource, parse_keys
    from iotnotify.mqtt import ConnectOptions, open_session

    raw = json.loads(subprocess.run([IOTNOTIFY, "keys", "--json"], env=env, check=True, capture_output=True).stdout)
    keys = parse_keys({k: v for k, v in raw.items() if k not in ("awsRules", "topics")})  # a client that knows no rules
    acked: list = []  # the outcomes
    with open_session(KeySource("unpaced", lambda: keys), ConnectOptions(ca_file=env["IOTNOTIFY_CA_FILE"])) as c:
        for i in range(count):
            c.publish(topic, b"%d" % i, 1, False, acked.append)
        time.sleep(5)
    return sum(outcome.acked for outcome in acked)


def receive(port: int, topic: str, count: int):  # type: ignore[no-untyped-def]
    """Start a subscriber for `count` messages on Mosquitto's plain listener (`port`): what reaches
    the broker, which AWS would not deliver to one subscriber over 100 a second (its outbound
    throttle, which the stack applies to wss connections); the returned function waits for it and
    says how many arrived."""
    proc = subprocess.Popen(["mosquitto_sub", "-p", str(port), "-h", "127.0.0.1", "-q", "1", "-t", topic,
                             "-C", str(count), "-W", "120", "-F", "%U %p"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # subscribed (a plain TCP connection on loopback)
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout.read().splitlines()))  # type: ignore[union-attr]
    reader.start()

    def arrived(wait: float = 150) -> tuple[int, float, float]:
        """How many distinct messages arrived (within `wait` s more), and when the first and the last did."""
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:  # some never came: count what did
            proc.terminate()
            proc.wait()
        reader.join()
        times = [float(line.split()[0]) for line in lines]
        return len({line.split()[1] for line in lines}), min(times), max(times)

    return arrived


if __name__ == "__main__":
    main()
