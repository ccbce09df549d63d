#!/usr/bin/env python3
"""End-to-end latency across a network, under AWS IoT Core's rules: from a sender's start (or, in
a stream, from the line written to its stdin) to a subscriber's line, the sender and the subscriber
each behind a relay of --rtt ms round trip (delay.py) to one enforcing local stack.

    .venv/bin/python bench/e2e.py [--rtt 50] [--sends 15] [--stream 200]

Senders: a one-off `iotnotify send` (over HTTPS: keys cached), the same through an agent, paho-mqtt
and MQTT.js over wss and mosquitto_pub over TLS, each started once per message; in a stream
(--stream messages, 20 a second, well under AWS's 100): `iotnotify send -l`, paho-mqtt and
mosquitto_pub `-l`. One subscriber, `iotnotify subscribe` behind its own relay, receives them all
(its share is the same in every row). Each message carries its send time; p50 and p99 per row,
beside the least the two one-way paths and the sender's handshakes allow.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from compare import IOTNOTIFY, MQTT_JS, Bench  # noqa: E402
from delay import Relay  # noqa: E402

TOPIC = "bench/e2e"
RATE = 20  # stream messages a second


class Arrivals:
    """The subscriber's lines (`ROW STAMP`), each with its arrival time, by row."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.latencies: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            now = time.time()
            try:
                row, stamp = line.decode().split()
                latency = now - float(stamp)
            except ValueError:
                continue  # a marker
            with self.changed:
                self.latencies.setdefault(row, []).append(latency)
                self.changed.notify_all()

    def wait(self, row: str, count: int, limit: float = 30) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.latencies.get(row, [])) >= count, limit):
                raise RuntimeError(f"{row}: {len(self.latencies.get(row, []))} of {count} arrived")


class Run:
    """The senders' rows against one subscriber: each row's latencies, least and how it is made."""

    def __init__(self, arrivals: Arrivals, sends: int, stream: int) -> None:
        self.arrivals, self.sends, self.stream = arrivals, sends, stream
        self.rows: dict[str, tuple[float, str]] = {}  # row -> (the least, in s; how it is made)

    def one_off(self, row: str, command: Callable[[str], list[str]], env: dict[str, str], least: float,
                how: str) -> None:
        """`sends` starts of `command(message)`, one at a time."""
        self.rows[row] = (least, how)
        for number in range(self.sends):
            stamp = time.time()
            subprocess.run(command(f"{row} {stamp:.6f}"), env=env, check=True, capture_output=True)
            self.arrivals.wait(row, number + 1)
            time.sleep(0.3)  # not in a burst: AWS's one CONNECT a second per client id, its own each

    def streamed(self, row: str, command: list[str], env: dict[str, str], least: float) -> None:
        """`stream` lines into one `command`, RATE a second."""
        self.rows[row] = (least, "connected: one way there, one on")
        proc = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
        time.sleep(2)  # connected
        start = time.monotonic()
        for number in range(self.stream):
            proc.stdin.write(f"{row} {time.time():.6f}\n".encode())  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            time.sleep(max(start + (number + 1) / RATE - time.monotonic(), 0))
        self.arrivals.wait(row, self.stream)
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(30)


def senders(run: Run, bench: Bench, send_env: dict[str, str], rtt: float) -> None:
    """Every sender's row."""
    run.one_off("iotnotify-send", lambda m: [IOTNOTIFY, "send", "-q", "1", TOPIC, m], send_env, 2.0 * rtt,
                "HTTPS: TLS 1, the POST's way there and the PUBLISH's on: 1")
    subprocess.run([IOTNOTIFY, "agent", "start", "--detach"], env=send_env, check=True, capture_output=True)
    try:
        run.one_off("iotnotify-agent", lambda m: [IOTNOTIFY, "send", "-q", "1", TOPIC, m], send_env, 1.0 * rtt,
                    "the agent's connection: one way there, one on")
    finally:
        subprocess.run([IOTNOTIFY, "agent", "stop"], env=send_env, capture_output=True)
    run.one_off("paho-wss", lambda m: [sys.executable, str(HERE / "paho_send.py"), bench.url, bench.ca, TOPIC, "1", m,
                                       bench.client_id()], bench.env, 4.0 * rtt,
                "TLS 1, upgrade 1, CONNECT 1, then one way there and one on")
    run.one_off("mqttjs-wss", lambda m: [*bench.mqtt_js("pub"), "-q", "1", "-t", TOPIC, "-m", m], bench.env,
                4.0 * rtt, "as paho")
    run.one_off("mosquitto_pub-tls", lambda m: [*bench.mosquitto("mosquitto_pub"), "-q", "1", "-t", TOPIC, "-m", m,
                                                "-i", bench.client_id()], bench.env, 3.0 * rtt,
                "TLS 1, CONNECT 1, then one way there and one on")
    run.streamed("iotnotify-send-l", [IOTNOTIFY, "send", "-l", "-q", "1", TOPIC], send_env, rtt)
    run.streamed("paho-wss-l", [sys.executable, str(HERE / "paho_send.py"), bench.url, bench.ca, TOPIC, "1", "-l",
                                bench.client_id()], bench.env, rtt)
    run.streamed("mosquitto_pub-tls-l", [*bench.mosquitto("mosquitto_pub"), "-q", "1", "-l", "-t", TOPIC, "-i",
                                         bench.client_id()], bench.env, rtt)


def measure(bench: Bench, rtt: float, sends: int, stream: int) -> Run:
    stack = bench.stack
    wss_sub, wss_send, tls = (Relay(stack.config.wss_port, rtt / 2), Relay(stack.config.wss_port, rtt / 2),
                              Relay(bench.tls_port, rtt / 2))
    with wss_sub, wss_send, tls:
        stack.origins += tuple(f"https://{n}:{wss_send.port}" for n in ("127.0.0.1", "localhost"))
        envs = {}
        for name, relay in (("sub", wss_sub), ("send", wss_send)):
            stack.issuer.port = relay.port  # keys minted now say: connect to this relay
            envs[name] = {**bench.env, "XDG_CACHE_HOME": str(bench.work / f"cache-{name}"),
                          "XDG_RUNTIME_DIR": tempfile.mkdtemp(prefix="rt-")}
            subprocess.run([IOTNOTIFY, "keys"], env=envs[name], check=True, capture_output=True)
        stack.issuer.port = stack.config.wss_port
        bench.wss, bench.tls = wss_send.port, tls.port
        ready = bench.work / "ready"
        sub = subprocess.Popen([IOTNOTIFY, "subscribe", TOPIC, "-q", "1", "--ready-file", str(ready)],
                               env=envs["sub"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not ready.exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("the subscriber did not subscribe")
                time.sleep(0.05)
            run = Run(Arrivals(sub), sends, stream)
            senders(run, bench, envs["send"], rtt)
        finally:
            sub.kill()
            sub.wait()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rtt", type=float, default=50.0)
    parser.add_argument("--sends", type=int, default=15, help="one-off sends per client")
    parser.add_argument("--stream", type=int, default=200, help="messages per stream")
    args = parser.parse_args()
    if not Path(MQTT_JS).exists():
        sys.exit(f"missing: {MQTT_JS}: run bench/run (after ./scripts/setup)")
    bench = Bench(Path(tempfile.mkdtemp()), 0, permissive=False)
    bench.start()
    try:
        run = measure(bench, args.rtt / 1000, args.sends, args.stream)
    finally:
        bench.stack.stop()
    print(f"end-to-end latency under AWS IoT Core's rules ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores): "
          f"sender and subscriber each behind {args.rtt:g} ms RTT; {args.sends} one-off sends, {args.stream} "
          f"streamed at {RATE}/s")
    print(f"{'sender':<22} {'p50':>8} {'p99':>8} {'least':>7}  the least: network only")
    for row, (least, how) in run.rows.items():
        samples = run.arrivals.latencies[row]
        cuts = statistics.quantiles(samples, n=100) if len(samples) > 1 else [samples[0]] * 99
        print(f"{row:<22} {cuts[49] * 1000:>5.0f} ms {cuts[98] * 1000:>5.0f} ms {least * 1000:>4.0f} ms  {how}")
    print("one-off: from the sender's start to the subscriber's line (start-up, keys cached, connecting, publishing);"
          " stream: from the line written to the sender's stdin. The relays accept TCP themselves: on a real network"
          " add a round trip per new connection.")


if __name__ == "__main__":
    main()
