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
import json
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


def signed_url(keys: dict, port: int) -> str:
    """A wss URL signed with the keys, as the other WebSocket clients need it (signed for Host with
    the port, as they send it; the session token appended after signing, as AWS IoT expects)."""
    from awscrt import auth, http

    host = f"127.0.0.1:{port}"
    request = http.HttpRequest("GET", "/mqtt", http.HttpHeaders([("Host", host)]))
    config = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4, signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
        credentials_provider=auth.AwsCredentialsProvider.new_static(keys["accessKey"], keys["secretKey"],
                                                                    keys["sessionToken"]),
        region=keys["region"], service="iotdevicegateway", omit_session_token=True)
    auth.aws_sign_request(request, config).result(5)
    return f"wss://{host}{request.path}"


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
    here = Path(__file__).resolve().parent
    rows: list[tuple[str, str, float, dict[str, float]]] = []  # scenario, unit, iotnotify, other clients
    try:
        keys = json.loads(subprocess.run([IOTNOTIFY, "keys", "--json"], env=env, check=True,
                                         capture_output=True).stdout)  # and now cached
        url, ca = signed_url(keys, stack.config.wss_port), str(stack.tls.ca_file)
        others = {
            "paho (wss)": lambda topic, qos, message: [sys.executable, str(here / "paho_send.py"), url, ca, topic,
                                                       qos, message],
            "MQTT.js (wss)": lambda topic, qos, message: ["node", "--no-warnings", str(here / "js" / "send.js"), url,
                                                          ca, topic, qos, message],
        }
        if have_mosquitto:
            others["mosquitto*"] = lambda topic, qos, message: (
                ["mosquitto_pub", "-p", plain, "-q", qos, "-t", topic]
                + (["-l"] if message == "-l" else ["-m", message]))
        for label, argv in (("startup: --help", ["--help"]), ("startup: send --help", ["send", "--help"])):
            rows.append((label, "s", median(args.runs, lambda: timed([IOTNOTIFY, *argv], env)), {}))
        rows.append(("cold send, QoS 1", "s", median(args.runs, lambda: timed([IOTNOTIFY, "send", "bench/cold", "x"], env)),
                     {name: median(args.runs, lambda: timed(make("bench/cold", "1", "x"), env))
                      for name, make in others.items()}))
        lines = b"".join(b'{"n": %d, "v": "xxxxxxxxxxxxxxxxxxxx"}\n' % i for i in range(args.messages))
        for qos in ("0", "1"):
            ours = median(args.runs, lambda: timed([IOTNOTIFY, "send", "-l", "--qos", qos, "bench/stream"], env, lines))
            streamers = {name: make for name, make in others.items() if name == "mosquitto*"}  # wss peers: to do
            rows.append((f"stream send {args.messages:,} lines, QoS {qos}", "msg/s", args.messages / ours,
                         {name: args.messages / median(args.runs, lambda: timed(make("bench/stream", qos, "-l"), env,
                                                                               lines))
                          for name, make in streamers.items()}))
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
                rows.append((label, "msg/s", ours, {"mosquitto*": theirs}))
    finally:
        stack.stop()
    print(f"iotnotify benchmark, {time.strftime('%Y-%m-%d')}, {platform.node()} ({os.cpu_count()} cores, "
          f"Python {platform.python_version()}), medians of {args.runs} runs")
    columns = ["paho (wss)", "MQTT.js (wss)", "mosquitto*"]
    print(f"{'scenario':<36} {'unit':>5} {'iotnotify':>10} " + " ".join(f"{c:>21}" for c in columns))
    for scenario, unit, ours, theirs in rows:
        fmt = ".3f" if unit == "s" else ",.0f"
        cells = []
        for column in columns:
            if column not in theirs:
                cells.append(f"{'-':>21}")
                continue
            ratio = theirs[column] / ours if unit == "s" else ours / theirs[column]  # >1: iotnotify faster
            cells.append(f"{format(theirs[column], fmt):>13} ({ratio:4.2f}x)")
        print(f"{scenario:<36} {unit:>5} {format(ours, fmt):>10} " + " ".join(cells))
    print("(Nx): iotnotify's advantage, >1 is faster. * mosquitto_pub/_sub over plain TCP (no TLS, WebSocket or"
          " SigV4): a floor, not a peer. The wss clients get a URL signed in advance (signing not timed).")


if __name__ == "__main__":
    main()
