#!/usr/bin/env python3
"""iotnotify against other MQTT clients on the same local broker, in one run; a printed table.

    bench/run [--runs 9] [--stream-runs 3] [--messages 100000]

Each row is a scenario, each column a client: medians over the runs (seconds, milliseconds or
messages per second), and each other client's ratio to iotnotify (>1: iotnotify is ahead). The
local stack is started here, on free loopback ports, with one more Mosquitto listener, TCP with
TLS, for mosquitto_pub/_sub. iotnotify goes through the TLS WebSocket front with SigV4, as it does
against AWS IoT Core; paho-mqtt and MQTT.js go through the same front with a URL signed for each
client start (not timed), as a real client signs when it connects (the front refuses a signature
older than five minutes). A client that fails a cell is tried once more, then its cell says so and
the run goes on. The raw figures of every run go to a JSON file beside the table (--raw).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from delay import Relay
from flood import Flood, encode
from latency import iotnotify_latency, paho_latency, percentiles

from iotnotify.local.stack import LocalStack, StackConfig
from iotnotify.times import parse_iso

IOTNOTIFY = str(Path(sys.executable).with_name("iotnotify"))
HERE = Path(__file__).resolve().parent
MQTT_JS = str(HERE / "js" / "node_modules" / ".bin" / "mqtt")
OURS, PAHO, MQTTJS, MOSQUITTO = "iotnotify", "paho (wss)", "MQTT.js (wss)", "mosquitto (tls)"
COLUMNS = [OURS, PAHO, MQTTJS, MOSQUITTO]


def user_environment() -> dict[str, str]:
    """This environment as a user's would be: without PYTHONUNBUFFERED (a write per line) and
    PYTHONDONTWRITEBYTECODE (every start compiles the package anew), which some machines set."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")}


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


RUN_LIMIT = 120  # s: a client that hangs fails the benchmark instead of stalling it


def run_limited(command: list[str], env: dict[str, str], stdin: bytes | None = None) -> None:
    """Run `command` to success, killed after RUN_LIMIT s. Not subprocess.run(timeout=...): its wait
    polls every 50 ms, which put every timing on a 50 ms grid."""
    proc = subprocess.Popen(command, stdin=subprocess.PIPE if stdin is not None else None,
                            stdout=subprocess.DEVNULL, env=env)
    watchdog = threading.Timer(RUN_LIMIT, proc.kill)
    watchdog.start()
    try:
        proc.communicate(stdin)
    finally:
        watchdog.cancel()
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, command)


def timed(command: list[str], env: dict[str, str], stdin: bytes | None = None) -> float:
    """Wall time of one run of `command` (which must succeed)."""
    start = time.perf_counter()
    run_limited(command, env, stdin)
    return time.perf_counter() - start


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) process `pid` has used so far (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


RAW: dict[str, dict[str, list[float]]] = {}  # row -> client -> every run's figure, for --raw


def median(runs: int, make: Callable[[], float], row: str = "", client: str = "") -> float:
    samples = [make() for _ in range(runs)]
    if row:
        RAW.setdefault(row, {})[client] = samples
    return statistics.median(samples)


def median_of(samples: list[float], row: str, client: str) -> float:
    """The median of figures measured along another row's runs (kept as that row's raw figures)."""
    RAW.setdefault(row, {})[client] = samples
    return statistics.median(samples)


def cell(measure: Callable[[], float], what: str) -> float | str:
    """A cell of the table: `measure()`, tried once more if it fails; then what went wrong, in a few
    words, instead of losing the table."""
    for attempt in (1, 2):
        try:
            return measure()
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            print(f"bench: {what} failed (attempt {attempt}): {e}", file=sys.stderr)
    return "failed"


class Bench:
    """The clients' command lines against one local stack, and the scenarios."""

    def __init__(self, work: Path, messages: int, permissive: bool = True, **stack: Any) -> None:
        self.work = work
        self.messages = messages
        self.tls_port = free_port()
        # permissive: the rows measure the clients, not AWS IoT Core's throttle (throttle.py measures that);
        # under AWS's rules (subscribed.py, network.py) the keys allow bench/* to a client id of their own
        self.stack = LocalStack(StackConfig(work / "state", free_port(), free_port(), free_port(),
                                            permissive=permissive, topics=("bench/*",), **stack))
        self.ids = itertools.count()
        tls = self.stack.tls
        self.stack.broker.extra_config = (f"listener {self.tls_port} 127.0.0.1\nprotocol mqtt\ncafile {tls.ca_file}\n"
                                          f"certfile {tls.cert_file}\nkeyfile {tls.key_file}\n")
        self.ca = str(tls.ca_file)
        self.wss = self.stack.config.wss_port  # where the wss clients connect (a delaying relay's port, for a while)
        self.tls = self.tls_port  # where mosquitto_pub/_sub connect
        self.plain = str(self.stack.config.mqtt_port)
        self.env: dict[str, str] = {}
        self.keys: dict = {}
        self.cpu: dict[str, list[float]] = {}  # client -> its CPU microseconds per message received, per run
        self.lines = b"".join(b'{"n": %d, "v": "xxxxxxxxxxxxxxxxxxxx"}\n' % i for i in range(messages))
        self.flood_stream = encode("bench/flood", self.lines.splitlines())
        self.flood_tool = "stream"  # or "mosquitto_pub" (-l), as before Round two, 11

    def start(self) -> None:
        self.stack.start()
        self.env = {**user_environment(), "XDG_CACHE_HOME": str(self.work / "cache"),
                    "XDG_CONFIG_HOME": str(self.work / "config"), "IOTNOTIFY_ENDPOINT": self.stack.endpoint_url,
                    "IOTNOTIFY_CA_FILE": self.ca}
        self.keys = json.loads(subprocess.run([IOTNOTIFY, "keys", "--json"], env=self.env, check=True,
                                              capture_output=True).stdout)  # and now cached, as a user's would be

    @property
    def url(self) -> str:
        """A wss URL signed now, for one client start (new keys first if these expire within a minute)."""
        if parse_iso(self.keys["expiration"]).timestamp() - time.time() < 60:
            self.keys = json.loads(subprocess.run([IOTNOTIFY, "keys", "--json", "--no-cache"], env=self.env,
                                                  check=True, capture_output=True).stdout)
        return signed_url(self.keys, self.wss)

    def client_id(self) -> str:
        """A client id for one start of another client: below the keys' own, as AWS's rules (the keys'
        policy, one CONNECT a second per client id) want it."""
        return f"{self.keys.get('clientId', 'bench')}-peer{next(self.ids)}"

    def mosquitto(self, tool: str) -> list[str]:
        return [tool, "-h", "127.0.0.1", "-p", str(self.tls), "--cafile", self.ca]

    def mqtt_js(self, verb: str) -> list[str]:
        path = self.url.split("127.0.0.1:", 1)[1].split("/", 1)[1]
        return [MQTT_JS, verb, "-h", "127.0.0.1", "-p", str(self.wss), "-C", "wss",
                "--path", "/" + path, "--ca", self.ca, "-i", self.client_id()]

    def sender(self, client: str, topic: str, qos: str, message: str | None) -> list[str]:
        """The command that publishes `message` once, or each stdin line when it is None."""
        if client == OURS:
            return [IOTNOTIFY, "send", "--qos", qos, topic] + (["-l"] if message is None else [message])
        if client == PAHO:
            return [sys.executable, str(HERE / "paho_send.py"), self.url, self.ca, topic, qos, message or "-l"]
        if client == MQTTJS:
            if message is not None:  # MQTT.js's own command
                return [*self.mqtt_js("pub"), "-q", qos, "-t", topic, "-m", message]
            # `mqtt pub -s -M` waits for each acknowledgement before the next line: a script that
            # keeps them all in flight, as the others do, is MQTT.js at its best
            return ["node", "--no-warnings", str(HERE / "js" / "send.js"), self.url, self.ca, topic, qos, "-l"]
        return [*self.mosquitto("mosquitto_pub"), "-q", qos, "-t", topic] + (["-l"] if message is None else
                                                                           ["-m", message])

    def subscriber(self, client: str, topic: str) -> list[str]:
        """A command that prints each message it receives on `topic`, one per line."""
        if client == OURS:
            return [IOTNOTIFY, "subscribe", topic, "--qos", "0", "--quiet"]
        if client == OURS + " --json":
            return [*self.subscriber(OURS, topic), "--json"]
        if client == MQTTJS:
            return [*self.mqtt_js("sub"), "-q", "0", "-t", topic]
        return [*self.mosquitto("mosquitto_sub"), "-q", "0", "-t", topic]

    def subscribed(self, sub: subprocess.Popen[bytes], topic: str) -> None:
        """Return once `sub` prints what is published on `topic` (one readiness test for every
        client: markers until one arrives), with the markers sent meanwhile read and dropped."""
        fd = sub.stdout.fileno()  # type: ignore[union-attr]
        deadline = time.monotonic() + 30
        while not select.select([fd], [], [], 0.2)[0]:
            if time.monotonic() > deadline or sub.poll() is not None:
                raise RuntimeError(f"{sub.args[0]} did not subscribe")
            subprocess.run(["mosquitto_pub", "-p", self.plain, "-q", "1", "-t", topic, "-m", "ready"], check=True)
        while select.select([fd], [], [], 0.3)[0]:  # markers still on their way
            os.read(fd, 1 << 16)

    def count_lines(self, sub: subprocess.Popen[bytes], quiet: float = 30) -> int:
        """Read `sub`'s output until it printed `messages` lines, or printed nothing for `quiet` s."""
        fd, seen = sub.stdout.fileno(), 0  # type: ignore[union-attr]
        while seen < self.messages and select.select([fd], [], [], quiet)[0]:
            data = os.read(fd, 1 << 20)
            if not data:
                break
            seen += data.count(b"\n")
        return seen

    def stream_until_received(self, client: str) -> tuple[float, int]:
        """Seconds from starting `client` on the lines at QoS 1 until a subscriber (mosquitto_sub on
        the plain listener, the same for every sender) received the last of them; and how many it
        received (fewer than sent: the sender lost some)."""
        sub = subprocess.Popen(["mosquitto_sub", "-p", self.plain, "-q", "1", "-t", "bench/received"],
                               stdout=subprocess.PIPE)
        try:
            self.subscribed(sub, "bench/received")
            start = time.perf_counter()
            run_limited(self.sender(client, "bench/received", "1", None), self.env, self.lines)
            received = self.count_lines(sub, quiet=5)
            return time.perf_counter() - start, received
        finally:
            sub.kill()
            sub.wait()

    def start_flood(self) -> Callable[[], None]:
        """Start the flood on bench/flood; what waits for its end (and raises if it failed)."""
        if self.flood_tool == "mosquitto_pub":  # the flood before Round two, 11 (bench/subscribe.py --flood)
            pub = subprocess.Popen(["mosquitto_pub", "-p", self.plain, "-q", "0", "-l", "-t", "bench/flood"],
                                   stdin=subprocess.PIPE)
            pub.stdin.write(self.lines)  # type: ignore[union-attr]
            pub.stdin.close()  # type: ignore[union-attr]

            def published() -> None:
                if pub.wait(RUN_LIMIT) != 0:
                    raise RuntimeError(f"the flood failed: mosquitto_pub exited {pub.returncode}")

            return published
        flood = Flood(int(self.plain), self.flood_stream)
        flood.start()

        def streamed() -> None:
            flood.join(RUN_LIMIT)
            flood.check()

        return streamed

    def receive_rate(self, client: str) -> float:
        """Messages per second `client` writes to a pipe under a flood (QoS 0, flood.py)."""
        sub = subprocess.Popen(self.subscriber(client, "bench/flood"), env=self.env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
        try:
            self.subscribed(sub, "bench/flood")
            start, cpu = time.perf_counter(), cpu_seconds(sub.pid)
            finish = self.start_flood()
            received = self.count_lines(sub)
            elapsed, cpu = time.perf_counter() - start, cpu_seconds(sub.pid) - cpu
            finish()
            if received < self.messages:
                raise RuntimeError(f"{client} printed {received} of {self.messages} messages")
            self.cpu.setdefault(client, []).append(cpu / received * 1e6)
            return self.messages / elapsed
        finally:
            sub.kill()
            sub.wait()


    def delayed(self, rtt: float) -> tuple[Relay, Relay, dict[str, str]]:
        """Relays adding rtt/2 each way in front of the wss front and the TLS listener, and the
        environment of an iotnotify whose cached keys point at the relay (as keys for a far endpoint
        would): the clients' traffic crosses a network `rtt` seconds round trip."""
        wss, tls = Relay(self.stack.config.wss_port, rtt / 2), Relay(self.tls_port, rtt / 2)
        env = {**self.env, "XDG_CACHE_HOME": str(self.work / f"cache-{rtt * 1000:.0f}ms")}
        # paho sends the origin of the server it believes it talks to (https://127.0.0.1:RELAY): the
        # front admits local origins only, and the relay's port stands for the broker's now
        self.stack.origins += tuple(f"https://{name}:{wss.port}" for name in ("127.0.0.1", "localhost"))
        self.stack.issuer.port = wss.port  # keys minted now say: connect to the relay
        try:
            subprocess.run([IOTNOTIFY, "keys"], env=env, check=True, capture_output=True)  # cached for the row
        finally:
            self.stack.issuer.port = self.stack.config.wss_port
        return wss, tls, env


Row = tuple[str, str, dict[str, "float | str"]]  # scenario, unit, value (or what went wrong) per client
LOOP = 100  # sends in the agent row's loop
AGENT_ROW = "send in a loop, per send"


def agent_loop(env: dict[str, str], sends: int = LOOP) -> float:
    """Seconds per `iotnotify send` in a shell-like loop of `sends`, through an agent started for
    these settings (not timed), as a script that ran `iotnotify agent start --detach` first."""
    env = {**env, "XDG_RUNTIME_DIR": tempfile.mkdtemp(prefix="rt-")}
    subprocess.run([IOTNOTIFY, "agent", "start", "--detach"], env=env, check=True, capture_output=True)
    try:
        start = time.perf_counter()
        for number in range(sends):
            run_limited([IOTNOTIFY, "send", "bench/agent", str(number)], env)
        elapsed = (time.perf_counter() - start) / sends
        status = subprocess.run([IOTNOTIFY, "agent", "status", "--json"], env=env, check=True, capture_output=True)
        if json.loads(status.stdout)["sends"] != sends:
            raise RuntimeError("the sends did not all go through the agent")
        return elapsed
    finally:
        subprocess.run([IOTNOTIFY, "agent", "stop"], env=env, capture_output=True)


def agent_row(runs: int, env: dict[str, str], cold: Row, label: str) -> Row:
    """iotnotify's send through its agent, per send in a loop; the other clients have no agent: a
    loop pays their cold send (`cold`) each time."""
    ours = cell(lambda: median(max(runs // 3, 1), lambda: agent_loop(env), label, OURS), f"{OURS} {label}")
    return (label, "s", {**cold[2], OURS: ours})


def run_far(bench: Bench, runs: int, rtt: float, near: Row) -> list[Row]:
    """The cold send across a network `rtt` seconds round trip, and the round trips it costs each
    client: (far - near) / rtt, `near` being the loopback row."""
    label = f"cold send, QoS 1, {rtt * 1000:.0f} ms RTT"
    wss_relay, tls_relay, env = bench.delayed(rtt)
    with wss_relay, tls_relay:
        bench.wss, bench.tls = wss_relay.port, tls_relay.port
        try:
            far: dict[str, float | str] = {client: cell(lambda client=client: median(
                runs, lambda: timed(bench.sender(client, "bench/cold", "1", "x"), env if client == OURS else bench.env),
                label, client), f"{client} {label}") for client in COLUMNS}
        finally:
            bench.wss, bench.tls = bench.stack.config.wss_port, bench.tls_port
        agent = agent_row(runs, env, (label, "s", far), f"{AGENT_ROW}, {rtt * 1000:.0f} ms RTT")
    trips: dict[str, float | str] = {}
    for client in COLUMNS:
        slow, fast = far.get(client), near[2].get(client)
        trips[client] = (slow - fast) / rtt if isinstance(slow, float) and isinstance(fast, float) else "-"
    return [(label, "s", far), ("  round trips it costs", "RTT", trips), agent]


def run(bench: Bench, runs: int, stream_runs: int) -> list[Row]:
    env, n = bench.env, bench.messages
    rows: list[Row] = []
    for label, argv in (("startup: --help", ["--help"]), ("startup: send --help", ["send", "--help"])):
        rows.append((label, "s", {OURS: cell(lambda argv=argv, label=label: median(
            runs, lambda: timed([IOTNOTIFY, *argv], env), label, OURS), f"{OURS} {label}")}))
    label = "cold send, QoS 1"
    rows.append((label, "s", {client: cell(lambda client=client: median(
        runs, lambda: timed(bench.sender(client, "bench/cold", "1", "x"), env), label, client),
        f"{client} {label}") for client in COLUMNS}))
    rows.append(agent_row(runs, env, rows[-1], AGENT_ROW))
    for qos in ("0", "1"):
        label = f"stream send {n:,} lines, QoS {qos}"
        rows.append((label, "msg/s", {client: cell(lambda client=client, qos=qos, label=label: n / median(
            stream_runs, lambda: timed(bench.sender(client, "bench/stream", qos, None), env, bench.lines),
            label, client), f"{client} {label}") for client in COLUMNS}))
    rows.append(("  ... until a subscriber got all", "msg/s",
                 {client: delivered(bench, client, stream_runs, rows[-1]) for client in COLUMNS}))
    rows += subscribe_rows(bench, stream_runs)
    ours = cell(lambda: percentiles(iotnotify_latency(bench.stack.endpoint_url, bench.ca, 2000)), "latency")
    paho = cell(lambda: percentiles(paho_latency(bench.url, bench.ca, 2000)), "paho latency")
    for index, label in ((0, "latency p50, QoS 1 (2,000 messages)"), (1, "latency p99")):
        rows.append((label, "ms", {OURS: ours[index] if isinstance(ours, tuple) else ours,
                                    PAHO: paho[index] if isinstance(paho, tuple) else paho}))
    return rows


SUBSCRIBERS = (OURS, OURS + " --json", MQTTJS, MOSQUITTO)


def subscribe_rows(bench: Bench, runs: int) -> list[Row]:
    """Subscribe to a pipe under a flood, the subscribers taking turns in each of `runs` (a slow
    moment of the machine hits every client): its rate, the subscriber's CPU per message, --json.
    A failed measurement is tried once more (cell); a client whose every run failed is marked."""
    rates: dict[str, list[float]] = {client: [] for client in SUBSCRIBERS}
    for _ in range(runs):
        for client in SUBSCRIBERS:
            rate = cell(lambda client=client: bench.receive_rate(client), f"{client} subscribe to a pipe")
            if isinstance(rate, float):
                rates[client].append(rate)

    def figure(samples: dict[str, list[float]], client: str, row: str) -> float | str:
        return median_of(samples[client], row, client) if samples.get(client) else "failed"

    plain, json_row, cpu_row = "subscribe to a pipe", "subscribe --json to a pipe", "  ... its CPU per message"
    return [(plain, "msg/s", {client: figure(rates, client, plain) for client in (OURS, MQTTJS, MOSQUITTO)}),
            # the client's own cost, apart from what it shares the cores with
            (cpu_row, "us", {client: figure(bench.cpu, client, cpu_row) for client in (OURS, MQTTJS, MOSQUITTO)}),
            (json_row, "msg/s", {OURS: figure(rates, OURS + " --json", json_row)})]


def delivered(bench: Bench, client: str, stream_runs: int, sent_row: Row) -> float | str:
    """Messages a second until a subscriber got the last of `client`'s QoS 1 stream; `lost N%` if
    some never arrived (and the sent row's rate is then starred: not a delivery rate)."""
    n = bench.messages
    try:
        results = [bench.stream_until_received(client) for _ in range(stream_runs)]
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        print(f"bench: {client} until received failed: {e}", file=sys.stderr)
        return "failed"
    RAW.setdefault("  ... until a subscriber got all", {})[client] = [n / seconds for seconds, _ in results]
    least = min(count for _, count in results)
    if least < n:  # not a speed: the sender exited 0 with messages it never sent
        if isinstance(sent_row[2][client], float):
            sent_row[2][client] = f"{sent_row[2][client]:,.0f}*"
        return f"lost {100 * (n - least) / n:.0f}%"
    return n / statistics.median(seconds for seconds, _ in results)


def print_table(rows: list[Row]) -> None:
    print(f"{'scenario':<36} {'unit':>5} {OURS:>10} " + " ".join(f"{c:>21}" for c in COLUMNS[1:]))
    for scenario, unit, values in rows:
        fmt = ",.0f" if unit == "msg/s" else ".3f" if unit == "s" else ".1f" if unit in ("RTT", "us") else ".2f"
        ours = values[OURS]
        if not isinstance(ours, float):
            print(f"{scenario:<36} {unit:>5} {ours:>10}")
            continue
        cells = []
        for column in COLUMNS[1:]:
            if column not in values:
                cells.append(f"{'-':>21}")
                continue
            theirs = values[column]
            if isinstance(theirs, str):
                cells.append(f"{theirs:>21}")
                continue
            if unit == "RTT":  # a count, not a speed: no ratio
                cells.append(f"{format(theirs, fmt):>21}")
                continue
            ratio = ours / theirs if unit == "msg/s" else theirs / ours  # >1: iotnotify ahead
            cells.append(f"{format(theirs, fmt):>13} ({ratio:4.2f}x)")
        print(f"{scenario:<36} {unit:>5} {format(ours, fmt):>10} " + " ".join(cells))
    print("(Nx): iotnotify's advantage over that client, above 1 iotnotify is ahead. The wss clients get a URL"
          " signed at each start (signing not timed); mosquitto_pub/_sub use TCP with TLS (no WebSocket, no SigV4).")
    if any(unit == "us" for _, unit, _ in rows):
        print("CPU per message: the subscriber's own CPU time (user and system) from the flood's start to its last"
              " line, over the messages: the client's cost apart from the broker side it shares the cores with"
              " (the wss clients' front, in Python, is part of that side).")
    if any(v == "failed" for _, _, values in rows for v in values.values()):
        print("failed: that client failed the scenario twice (stderr says how); the other cells are measured.")
    if any(isinstance(v, str) and v.startswith("lost") for _, _, values in rows for v in values.values()):
        print("lost N%: the subscriber never received that share of the messages, though the sender exited 0;"
              " * its rate above is not a delivery rate.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9, help="runs of the short scenarios (startup, cold send)")
    parser.add_argument("--stream-runs", type=int, default=3, help="runs of the stream and subscribe scenarios")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rtt", type=float, default=50,
                        help="round trip in ms of the far cold-send row (a delaying relay; 0: no such row)")
    parser.add_argument("--raw", type=Path, default=HERE / "results.json",
                        help="where the run's raw figures go, as JSON (default: bench/results.json)")
    args = parser.parse_args()
    missing = [tool for tool in ("mosquitto_pub", "mosquitto_sub", "node") if shutil.which(tool) is None]
    if missing or not Path(MQTT_JS).exists():
        sys.exit(f"missing: {', '.join(missing) or MQTT_JS}: run bench/run (after ./scripts/setup)")
    bench = Bench(Path(tempfile.mkdtemp()), args.messages)
    bench.start()
    try:
        rows = run(bench, args.runs, args.stream_runs)
        if args.rtt > 0:
            near = next(row for row in rows if row[0] == "cold send, QoS 1")
            rows[4:4] = run_far(bench, args.runs, args.rtt / 1000, near)
    finally:
        bench.stack.stop()
    print(f"iotnotify benchmark, {time.strftime('%Y-%m-%d')}, {platform.node()} ({os.cpu_count()} cores, "
          f"Python {platform.python_version()}), medians of {args.runs} runs ({args.stream_runs} for streams)")
    print_table(rows)
    args.raw.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "host": platform.node(),
                                    "cores": os.cpu_count(), "python": platform.python_version(),
                                    "runs": args.runs, "stream_runs": args.stream_runs, "messages": args.messages,
                                    "rows": [{"scenario": s, "unit": u, "values": v} for s, u, v in rows],
                                    "samples": RAW}, indent=2) + "\n")
    print(f"raw figures: {args.raw}")


if __name__ == "__main__":
    main()
