#!/usr/bin/env python3
"""Time to subscribed, under AWS IoT Core's rules: from a subscriber's process start to the moment
it is subscribed (when a `subscribe -C 1` script may let its sender go), on loopback and across a
--rtt ms round trip; iotnotify with its keys cached and with keys fetched at start, against
paho-mqtt and MQTT.js over wss and mosquitto_sub over TLS, on one enforcing local stack.

    .venv/bin/python bench/subscribed.py [--runs 9] [--rtt 50]

The moment is seen the same way for every client: a retained message waits on the topic, and the
broker sends it right behind the SUBACK, so the subscriber's first line is its SUBACK (plus the
time to print one line). The clients take turns in each run; medians, and the round trips each
costs, (far - near) / RTT, beside the fewest the protocol needs.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from compare import IOTNOTIFY, MQTT_JS, Bench  # noqa: E402
from delay import Relay  # noqa: E402

from iotnotify.local import keys_server  # noqa: E402

TOPIC = "bench/subscribed"
OURS, FETCHED = "iotnotify", "iotnotify, keys fetched"
PAHO, MQTTJS, MOSQUITTO = "paho (wss)", "MQTT.js (wss)", "mosquitto_sub (tls)"
CLIENTS = (OURS, FETCHED, PAHO, MQTTJS, MOSQUITTO)
# the fewest round trips from process start to SUBACK, the TCP handshake apart (the relay accepts
# TCP itself, so it costs none here; add one per connection on a real network): TLS 1.3 (1), the
# WebSocket upgrade (1), CONNECT (1), SUBSCRIBE (1); SUBSCRIBE may follow CONNECT without waiting
# for the CONNACK (MQTT 3.1.1 and 5, 3.1.4), which makes the last two one. Keys fetched first: the
# GET (1) before any of it (the local endpoint is plain HTTP on loopback; API Gateway's HTTPS adds
# TLS's one). mosquitto_sub: no WebSocket upgrade.
LEAST = {OURS: (4, 3), FETCHED: (5, 4), PAHO: (4, 3), MQTTJS: (4, 3), MOSQUITTO: (3, 2)}


def first_line(command: list[str], env: dict[str, str], limit: float = 30) -> float:
    """Seconds from starting `command` to the first line on its stdout (then it is killed)."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=errors)
        try:
            fd, seen = proc.stdout.fileno(), b""  # type: ignore[union-attr]
            while b"\n" not in seen:
                if not select.select([fd], [], [], max(start + limit - time.perf_counter(), 0))[0]:
                    raise RuntimeError(f"{command[0]}: no line within {limit} s")
                if not (chunk := os.read(fd, 1 << 12)):
                    errors.seek(0)
                    said = errors.read().decode(errors="replace").strip().splitlines()
                    raise RuntimeError(f"{Path(command[0]).name} exited {proc.wait()}: {said[-1] if said else ''}")
                seen += chunk
            return time.perf_counter() - start
        finally:
            proc.kill()
            proc.wait()


class Subscribers:
    """Each client's command, subscribing to TOPIC, against the bench's stack (or its relays)."""

    def __init__(self, bench: Bench, env: dict[str, str]) -> None:
        self.bench = bench
        self.env = env  # iotnotify's, with its keys cached (for the broker these keys point at)
        self.endpoint = env["IOTNOTIFY_ENDPOINT"]

    def measure(self, client: str) -> float:
        bench = self.bench
        if client == OURS:
            return first_line([IOTNOTIFY, "subscribe", TOPIC, "-q", "1", "-C", "1"], self.env)
        if client == FETCHED:  # no cached keys: a first run, or a script run after they expired
            with tempfile.TemporaryDirectory() as cache:
                return first_line([IOTNOTIFY, "subscribe", TOPIC, "-q", "1", "-C", "1"],
                                  {**self.env, "XDG_CACHE_HOME": cache})
        if client == PAHO:
            return first_line([sys.executable, str(HERE / "paho_sub.py"), bench.url, bench.ca, bench.client_id(),
                               TOPIC], bench.env)
        if client == MQTTJS:
            return first_line([*bench.mqtt_js("sub"), "-q", "1", "-t", TOPIC], bench.env)
        return first_line([*bench.mosquitto("mosquitto_sub"), "-q", "1", "-t", TOPIC, "-C", "1"], bench.env)


def measure_all(subscribers: Subscribers, runs: int) -> dict[str, list[float]]:
    """Every client once per run, in turns (a slow moment of the machine hits them all)."""
    samples: dict[str, list[float]] = {client: [] for client in CLIENTS}
    for _ in range(runs):
        for client in CLIENTS:
            try:
                samples[client].append(subscribers.measure(client))
            except RuntimeError as e:
                print(f"bench: {client}: {e}", file=sys.stderr)
    return samples


def far_side(bench: Bench, rtt: float) -> tuple[list[Relay], dict[str, str]]:
    """Relays adding rtt/2 each way in front of the wss front, the TLS listener and the keys endpoint,
    and iotnotify's environment for them (keys cached, minted to connect to the relay)."""
    stack = bench.stack
    keys_port = int(stack.endpoint_url.split(":")[2].split("/")[0])
    relays = [Relay(stack.config.wss_port, rtt / 2), Relay(bench.tls_port, rtt / 2), Relay(keys_port, rtt / 2)]
    wss, _tls, keys = relays
    # the keys endpoint admits its own loopback Host only (DNS rebinding): the relay's port stands for it
    own = keys_server.loopback_hosts
    keys_server.loopback_hosts = lambda port: own(port) | own(keys.port)  # type: ignore[assignment]
    stack.origins += tuple(f"https://{name}:{wss.port}" for name in ("127.0.0.1", "localhost"))
    stack.issuer.port = wss.port  # keys minted from now on say: connect to the relay
    env = {**bench.env, "XDG_CACHE_HOME": str(bench.work / f"cache-{rtt * 1000:.0f}ms"),
           "IOTNOTIFY_ENDPOINT": stack.endpoint_url.replace(f":{keys_port}/", f":{keys.port}/")}
    return relays, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--rtt", type=float, default=50, help="round trip in ms of the far rows (0: none)")
    args = parser.parse_args()
    missing = [tool for tool in ("mosquitto_pub", "mosquitto_sub", "node") if shutil.which(tool) is None]
    if missing or not Path(MQTT_JS).exists():
        sys.exit(f"missing: {', '.join(missing) or MQTT_JS}: run bench/run (after ./scripts/setup)")
    bench = Bench(Path(tempfile.mkdtemp()), 0, permissive=False)
    bench.start()
    results: dict[str, dict[str, list[float]]] = {}
    try:
        subprocess.run(["mosquitto_pub", "-p", bench.plain, "-q", "1", "-r", "-t", TOPIC, "-m", "ready"], check=True)
        results["loopback"] = measure_all(Subscribers(bench, bench.env), args.runs)
        if args.rtt > 0:
            relays, env = far_side(bench, args.rtt / 1000)
            for relay in relays:
                relay.__enter__()
            try:
                bench.wss, bench.tls = relays[0].port, relays[1].port
                subprocess.run([IOTNOTIFY, "keys"], env=env, check=True, capture_output=True)  # cached for OURS
                results[f"{args.rtt:g} ms RTT"] = measure_all(Subscribers(bench, env), args.runs)
            finally:
                for relay in relays:
                    relay.__exit__()
    finally:
        bench.stack.stop()
    table(results, args.runs, args.rtt / 1000)


def table(results: dict[str, dict[str, list[float]]], runs: int, rtt: float) -> None:
    median: Callable[[list[float]], float | None] = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    print(f"time to subscribed under AWS IoT Core's rules ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores), "
          f"process start to SUBACK, medians of {runs} runs")
    print(f"{'client':<24} " + " ".join(f"{where:>14}" for where in results) + f" {'round trips':>12} {'least':>8}"
          f" {'vs iotnotify':>13}")
    near, far = ([*list(results.values()), {}])[:2]
    ours_near = median(near.get(OURS, []))
    for client in CLIENTS:
        cells = [median(samples.get(client, [])) for samples in results.values()]
        shown = [f"{c * 1000:>11.0f} ms" if c is not None else f"{'failed':>14}" for c in cells]
        trips = (cells[1] - cells[0]) / rtt if len(cells) > 1 and None not in cells else None
        least = "{} ({})".format(*LEAST[client])
        ours_far = median(far.get(OURS, [])) if far else None
        mine = cells[-1]
        ratio = f"{mine / (ours_far if far else ours_near):>12.2f}x" if mine and (ours_far or ours_near) else ""
        print(f"{client:<24} " + " ".join(shown) + f" {trips if trips is None else format(trips, '12.1f')!s:>12}"
              f" {least:>8} {ratio:>13}")
    print("round trips: (far - loopback) / RTT. least: the fewest the protocol needs from start to SUBACK, with"
          " SUBSCRIBE behind CONNACK (and, in brackets, sent right behind CONNECT); add one per TCP connection on a"
          " real network (the relay accepts TCP itself).")
    print("vs iotnotify: that client's time at the far column over iotnotify's with cached keys (above 1: iotnotify"
          " is ahead).")


if __name__ == "__main__":
    main()
